"""The demo goal end to end on the in-process model, on both engines: wall time, model calls, tokens, and what came out.

    python -m bench.demo [--runs 1] [--engines transformers,llamacpp]

Runs `llmos demo`'s team on DEMO_GOAL (support + recommendation + analysis) with the 0.5B
model, as `make demo` does, once on each engine in the same run (llama.cpp on the shipped
GGUF file against the transformers baseline). As `llmos demo` does, the models (the chat model
and the embedding model) are loaded before the goal is given; `load_s` is that time, and
`wall_s` the goal's, from the goal to the answer. A third run warms the llama.cpp team first
(`Team.warm`: every agent's fixed prompt start read into the cache, as `llmos chat` and
`llmos serve` do while waiting for the first message; `warm_s`). Each run records: wall time, time to the
plan, each subtask's time and outcome, model calls and tokens, and whether the answer cites
a policy document. `speedup` is the transformers median wall time over llama.cpp's. The
subtasks' own times added up, against the wall time of the subtask phase, show how much
running them side by side saved. Writes bench/results/demo.json. About 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from bench.common import print_table, write_results
from llmos.agents import ErrorEvent, FinalEvent, PlanEvent, SubtaskFinishedEvent, SubtaskStartedEvent
from llmos.demo import DATA_DIR, prepare_demo
from llmos.demo.team import DEMO_GOAL, demo_team
from llmos.llm.local import LlamaCppModel, LocalModel
from llmos.tools import RunContext

MODEL = "qwen2.5-coder-0.5b"


def cites_a_policy(sources: list[str]) -> bool:
    """True when a source is one of the demo's policy documents ("returns.md, Returns and refunds > ...")."""
    policies = {p.name for p in (DATA_DIR / "policies").glob("*.md")}
    return any(s.split(",")[0] in policies for s in sources)


async def one_run(team) -> dict:
    started = time.perf_counter()
    plan_s = first_start = last_finish = None
    result, error = None, None
    async for event in team.stream(DEMO_GOAL, context=RunContext(user="C001")):
        now = time.perf_counter() - started
        if isinstance(event, PlanEvent) and plan_s is None:
            plan_s = now
        elif isinstance(event, SubtaskStartedEvent):
            first_start = now if first_start is None else first_start
        elif isinstance(event, SubtaskFinishedEvent):
            last_finish = now
        elif isinstance(event, FinalEvent):
            result = event.result
        elif isinstance(event, ErrorEvent) and event.subtask is None:
            error = event.message
    wall = time.perf_counter() - started
    subtasks = [
        {
            "id": r.id, "specialist": r.specialist, "ok": r.ok, "seconds": r.duration_s,
            "model_calls": r.run.model_calls if r.run else 0, "tool_calls": r.run.tool_calls if r.run else 0,
            "error": r.error,
        }
        for r in (result.subtasks if result else [])
    ]  # fmt: skip
    sources = [s.citation for s in result.sources] if result else []
    phase = (last_finish - first_start) if first_start is not None and last_finish is not None else 0.0
    return {
        "wall_s": wall,
        "plan_s": plan_s,
        "route": result.route if result else None,
        "specialists": sorted({s["specialist"] for s in subtasks}),
        "subtasks": subtasks,
        "subtasks_ok": sum(s["ok"] for s in subtasks),
        "subtask_phase_s": phase,
        "subtask_seconds_added_up": sum(s["seconds"] for s in subtasks),
        "model_calls": result.model_calls if result else None,
        "prompt_tokens": result.usage.prompt_tokens if result else None,
        "completion_tokens": result.usage.completion_tokens if result else None,
        "sources": sources,
        "cites_a_policy": cites_a_policy(sources),
        "answer": result.text if result else None,
        "error": error,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--engines", default="transformers,llamacpp", help="Comma-separated, measured in this order.")
    args = parser.parse_args()

    load_at_start = os.getloadavg()
    stores = prepare_demo()
    runs, engines = [], [e.strip() for e in args.engines.split(",") if e.strip()]
    # "llamacpp, warmed": a fresh llama.cpp model whose team was warmed (Team.warm) before the goal came,
    # as `llmos chat` and `llmos serve` do while waiting for the first message.
    modes = [*engines, *(["llamacpp, warmed"] if "llamacpp" in engines else [])]
    for mode in modes:
        engine = mode.split(",")[0]
        # One engine loaded at a time, so that they never compete for the cores.
        model = (LlamaCppModel if engine == "llamacpp" else LocalModel).from_catalog(MODEL)
        try:
            started = time.perf_counter()
            await model.load()
            stores.load()
            load_s = time.perf_counter() - started
            for _ in range(args.runs):
                team = demo_team(stores, model)
                warm_s = None
                if mode.endswith("warmed"):
                    started = time.perf_counter()
                    await team.warm()
                    warm_s = time.perf_counter() - started
                print(f"running the demo goal on {mode} ...", flush=True)
                run = await one_run(team)
                runs.append({"engine": mode, "load_s": load_s, "warm_s": warm_s, **run,
                             "prompt_cache": getattr(model, "stats", None)})  # fmt: skip
        finally:
            await model.aclose()
    wall = {m: statistics.median(r["wall_s"] for r in runs if r["engine"] == m) for m in modes}
    speedup = wall["transformers"] / wall["llamacpp"] if {"transformers", "llamacpp"} <= wall.keys() else None
    rows = [
        [
            r["engine"], i + 1, r["load_s"], r["wall_s"], r["plan_s"], f"{r['subtasks_ok']}/{len(r['subtasks'])}", ", ".join(r["specialists"]),
            r["model_calls"], f"{r['prompt_tokens']}+{r['completion_tokens']}",
            r["subtask_seconds_added_up"] / r["subtask_phase_s"] if r["subtask_phase_s"] else 0.0, r["cites_a_policy"],
        ]
        for i, r in enumerate(runs)
    ]  # fmt: skip
    print_table(
        f"The demo goal on the in-process {MODEL}",
        ["engine", "run", "load s", "wall s", "plan s", "subtasks ok", "specialists", "model calls", "tokens (prompt+completion)",
         "subtask overlap", "cites a policy"],
        rows,
    )  # fmt: skip
    if speedup:
        print(f"llama.cpp speedup on the demo goal: {speedup:.2f}x ({wall['transformers']:.1f} s -> {wall['llamacpp']:.1f} s)")
    path = write_results(
        "demo",
        {
            "model": MODEL, "backend": "in-process", "goal": DEMO_GOAL,
            "wall_s": wall, "speedup": speedup, "goal_wall_s": 60.0, "runs": runs,
            "environment": {"load_average_at_start": load_at_start, "load_average": os.getloadavg()},
        },
    )  # fmt: skip
    print(f"Wrote {path}")


if __name__ == "__main__":
    asyncio.run(main())
