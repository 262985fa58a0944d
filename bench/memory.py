"""Memory: how fast the session store appends a turn and loads a conversation, on SQLite and PostgreSQL.

The store is filled with `--sessions` sessions (default 10,000) of `--messages` messages each
(default 50: 25 answered turns), written straight into the tables. Then, on random sessions:

- append: one turn, as a run with a session does it: `begin_turn` (lock the session, commit
  the user's message) then `finish_turn` (commit the answer, release the session);
- load: `messages(session)`, the whole conversation read back as typed messages.

SQLite is a file in a temporary folder (WAL, fsync at every commit); PostgreSQL is a cluster
this benchmark starts in a temporary folder with default settings (fsync on), reached over TCP.
Run: `python -m bench.memory` (`--sessions 1000` for a quick look). The results go in the
`store` part of bench/results/memory.json; the file's other parts are kept.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import RESULTS, machine, print_table, write_results
from llmos.llm.messages import AssistantMessage
from llmos.memory import SQLSessionStore
from llmos.memory.schema import messages, sessions, tenants, turns
from llmos.memory.testing import TempPostgres

TEXT = (
    "My order 1042 arrived with a cracked lid; can I get a replacement sent to the same address, "
    "or do I need to return the whole set first? I still have the box."
)
CHUNK = 500  # sessions written per transaction while filling


async def fill(store: SQLSessionStore, n_sessions: int, n_messages: int) -> float:
    """Write the sessions, their turns and messages directly; returns the seconds it took."""
    started = time.perf_counter()
    now = datetime.now(timezone.utc)
    per_turn = 2
    n_turns = n_messages // per_turn
    await store.create_session("warm-up")  # migrates the schema and creates the default tenant
    async with store.engine.begin() as connection:
        await connection.execute(sa.delete(sessions))
    turn_id = 0
    for first in range(0, n_sessions, CHUNK):
        session_rows, turn_rows, message_rows = [], [], []
        for key in range(first + 1, min(first + CHUNK, n_sessions) + 1):
            session_rows.append(
                {"key": key, "tenant_id": "default", "id": f"s{key}", "user_id": None, "title": "", "mode": "assistant",
                 "meta": {}, "created_at": now, "updated_at": now, "turn_count": n_turns, "message_count": n_turns * per_turn}
            )
            for number in range(1, n_turns + 1):
                turn_id += 1
                turn_rows.append(
                    {"id": turn_id, "session_key": key, "number": number, "status": "answered", "started_at": now,
                     "finished_at": now, "outcome": "direct", "prompt_tokens": 300, "completion_tokens": 60}
                )
                for i, role in enumerate(("user", "assistant")):
                    message_rows.append(
                        {"session_key": key, "turn_id": turn_id, "seq": (number - 1) * per_turn + i + 1, "role": role,
                         "content": TEXT, "tool_calls": None, "tool_call_id": None, "name": None, "is_error": False,
                         "citations": None, "tokens": 40, "created_at": now}
                    )
        async with store.engine.begin() as connection:
            await connection.execute(sessions.insert(), session_rows)
            await connection.execute(turns.insert(), turn_rows)
            await connection.execute(messages.insert(), message_rows)
    if store.postgres:  # rows were written with their ids: move the id sequences past them
        async with store.engine.begin() as connection:
            for table in ("sessions", "turns", "messages"):
                column = "key" if table == "sessions" else "id"
                await connection.execute(
                    sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), (SELECT max({column}) FROM {table}))")
                )
            await connection.execute(sa.text("ANALYZE"))
    return time.perf_counter() - started


async def measure(url: str, n_sessions: int, n_messages: int, samples: int) -> dict[str, Any]:
    store = SQLSessionStore(url)
    try:
        fill_s = await fill(store, n_sessions, n_messages)
        rng = random.Random(7)
        append, begin, finish, load = [], [], [], []
        for _ in range(samples):
            session = f"s{rng.randint(1, n_sessions)}"
            t0 = time.perf_counter()
            turn = await store.begin_turn(session, TEXT)
            t1 = time.perf_counter()
            await turn.finish([AssistantMessage(content=TEXT)])
            t2 = time.perf_counter()
            append.append(t2 - t0)
            begin.append(t1 - t0)
            finish.append(t2 - t1)
        for _ in range(samples):
            session = f"s{rng.randint(1, n_sessions)}"
            t0 = time.perf_counter()
            loaded = await store.messages(session)
            load.append(time.perf_counter() - t0)
            assert len(loaded) >= n_messages
        return {
            "append_p50_ms": _p(append, 50),
            "append_p90_ms": _p(append, 90),
            "begin_turn_p50_ms": _p(begin, 50),
            "finish_turn_p50_ms": _p(finish, 50),
            "load_p50_ms": _p(load, 50),
            "load_p90_ms": _p(load, 90),
            "fill_s": round(fill_s, 1),
        }
    finally:
        await store.close()


def _p(seconds: list[float], q: int) -> float:
    return round(statistics.quantiles(seconds, n=100)[q - 1] * 1000, 3)


def _cpu() -> dict[str, Any]:
    """CPU model and AVX-512, when bench.common's machine() does not give them yet."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    model = next((ln.partition(":")[2].strip() for ln in info.splitlines() if ln.startswith("model name")), "")
    flags = next((ln.partition(":")[2].split() for ln in info.splitlines() if ln.startswith("flags")), [])
    return {"cpu_model": model, "avx512": "avx512f" in flags}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=50, help="messages per session (two per turn)")
    parser.add_argument("--samples", type=int, default=200, help="appends and loads measured per backend")
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()

    started = time.perf_counter()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="llmos-bench-memory-") as folder:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                url = f"sqlite+aiosqlite:///{folder}/memory.db"
                results[backend] = asyncio.run(measure(url, args.sessions, args.messages, args.samples))
            else:
                with TempPostgres() as server:
                    url = server.create_database("bench")
                    results[backend] = asyncio.run(measure(url, args.sessions, args.messages, args.samples))

    rows = [[b, r["append_p50_ms"], r["append_p90_ms"], r["load_p50_ms"], r["load_p90_ms"], r["fill_s"]] for b, r in results.items()]
    print_table(
        f"Session store: {args.sessions:,} sessions of {args.messages} messages, {args.samples} samples",
        ["backend", "append p50 ms", "append p90 ms", "load p50 ms", "load p90 ms", "fill s"],
        rows,
    )
    path = RESULTS / "memory.json"
    data = json.loads(path.read_text()) if path.exists() else {}  # keep the other parts (summaries, recall)
    for key in ("benchmark", "date", "machine"):
        data.pop(key, None)
    data["store"] = {
        "sessions": args.sessions,
        "messages_per_session": args.messages,
        "samples": args.samples,
        "append": "begin_turn (lock, commit the user's message) + finish_turn (commit the answer, unlock)",
        "load": "messages(session): the whole conversation as typed messages",
        "seconds": round(time.perf_counter() - started, 1),
        **results,
    }
    data["append_p50_ms"] = {b: r["append_p50_ms"] for b, r in results.items()}
    data["load_p50_ms"] = {b: r["load_p50_ms"] for b, r in results.items()}
    info = machine()
    if "cpu_model" not in info:
        data["cpu"] = _cpu()
    print(f"wrote {write_results('memory', data)} in {data['store']['seconds']} s")


if __name__ == "__main__":
    main()
