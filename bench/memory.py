"""Memory: how fast the session store appends a turn and loads a conversation, on SQLite and PostgreSQL.

The store is filled with `--sessions` sessions (default 10,000) of `--messages` messages each
(default 50: 25 answered turns), written straight into the tables. Then, on random sessions:

- append: one turn, as a run with a session does it: `begin_turn` (lock the session, commit
  the user's message) then `finish_turn` (commit the answer, release the session);
- load: `messages(session)`, the whole conversation read back as typed messages.

SQLite is a file in a temporary folder (WAL, fsync at every commit); PostgreSQL is a cluster
this benchmark starts in a temporary folder with default settings (fsync on), reached over TCP.
Two more parts (`--parts store,context,recall`, all by default):

- context: a scripted 200-turn conversation of one agent with a session (Memory, default
  ContextPolicy), on a deterministic model written here (its answers and summaries are fixed
  functions of the request). It reports the largest request in tokens against the budget
  (instructions plus the history budget) and `prefix_stable_share`: the share of consecutive
  turns whose request starts with the previous turn's history, byte for byte (what a prefix
  cache reuses). Baseline: the same conversation sent whole, without a budget.
- recall: `fact_recall_at_3` over the 104 fact/question pairs of bench/memory_facts.py, split
  into users of 20 facts (a customer's memory), embedded with the real default embedder
  (all-MiniLM-L6-v2): a question scores when its fact is among the 3 recalled from its user's
  facts (recalled only when their cosine is at least UserMemory's min_score, 0.2). Also
  reported: all 104 facts in one user. Baselines: facts embedded in the third person they
  are stored in (llmos embeds them in the first person), and ranking by shared words. The
  first-person form and min_score were chosen on these same pairs: there is no held-out set.

Run: `python -m bench.memory` (`--sessions 1000` for a quick look). Each part writes its
keys of bench/results/memory.json; the file's other keys are kept.
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
from bench.memory_facts import PAIRS
from llmos.agents import Agent
from llmos.llm.messages import AssistantMessage, SystemMessage, UserMessage
from llmos.llm.model import ChatModel, ChatRequest, ChatResponse, Usage
from llmos.memory import ContextPolicy, Memory, SQLSessionStore, UserMemory, prompts
from llmos.memory.context import message_tokens
from llmos.tools import RunContext
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


# --- context: a long conversation within the budget ----------------------------------------------

INSTRUCTIONS = "You are the support assistant of a home-appliance shop. Answer briefly and precisely."
TOPICS = ["dishwasher", "order 1042", "refund", "warranty", "kettle", "delivery slot", "invoice", "lamp", "blender"]


class DeterministicModel(ChatModel):
    """Answers a turn with text whose length depends on the turn; summarizes by keeping the newest lines."""

    name = "deterministic"

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    async def _stream(self, request: ChatRequest):
        self.requests.append(request)
        if request.messages[0].content.startswith(prompts.SUMMARY_SYSTEM[:40]):
            ask = request.messages[1].content
            previous, _, turns = ask.partition("Turns that follow it:\n")
            said = [line[6:60] for line in turns.splitlines() if line.startswith("User: ")]
            text = (previous.removeprefix("Summary so far:\n").strip() + " The user asked: " + "; ".join(said))[-1000:]
        else:
            n = sum(m.role == "user" for m in request.messages)
            text = f"About {TOPICS[n % len(TOPICS)]}: " + "here is what I found and what to do next. " * (2 + n % 7)
        yield ChatResponse(model=self.name, message=AssistantMessage(content=text), usage=Usage(prompt_tokens=1))


def user_text(i: int, rng: random.Random) -> str:
    topic = rng.choice(TOPICS)
    return f"Turn {i}: a question about my {topic}. " + "Some more detail on it. " * rng.randint(0, 8)


async def context_part(folder: str, turns: int) -> dict[str, Any]:
    policy = ContextPolicy()
    model = DeterministicModel()
    memory = Memory(SQLSessionStore(f"sqlite+aiosqlite:///{folder}/context.db"), remember=False, policy=policy)
    agent = Agent("support", instructions=INSTRUCTIONS, model=model, memory=memory)
    rng = random.Random(11)
    me = RunContext(user="C001", tenant="bench")
    started = time.perf_counter()
    transcript = message_tokens(SystemMessage(content=INSTRUCTIONS))  # the baseline's request: everything
    baseline_largest = 0
    for i in range(turns):
        text = user_text(i, rng)
        result = await agent.run(text, session="long", context=me)
        transcript += message_tokens(UserMessage(content=text))
        baseline_largest = transcript
        transcript += message_tokens(result.messages[-1])
    seconds = time.perf_counter() - started
    await memory.close()

    runs = [r for r in model.requests if not r.messages[0].content.startswith(prompts.SUMMARY_SYSTEM[:40])]
    sizes = [sum(message_tokens(m) for m in r.messages) for r in runs]
    budget = message_tokens(runs[0].messages[0]) + policy.max_history_tokens
    prefixes = [[m.model_dump_json() for m in r.messages[:-1]] for r in runs]  # all but the new message
    stable = sum(b[: len(a)] == a for a, b in zip(prefixes, prefixes[1:]))
    return {
        "turns": turns,
        "history_budget_tokens": policy.max_history_tokens,
        "request_budget_tokens": budget,
        "largest_request_tokens": max(sizes),
        "within_budget": max(sizes) <= budget,
        "prefix_stable_share": round(stable / (len(runs) - 1), 3),
        "summary_refreshes": len(model.requests) - len(runs),
        "baseline_whole_history_largest_request_tokens": baseline_largest,
        "tokens_counted_with": "llmos.memory.estimate_tokens (4 characters a token) + 4 per message",
        "seconds": round(seconds, 1),
    }


# --- recall: facts about a user, found again by a later question -------------------------------


def _words(text: str) -> set[str]:
    return {w.strip(".,?!()'\"").lower() for w in text.split()} - {"the", "user", "my", "i", "a", "is", "of", "do", "for", "which", "what", "me"}


async def recall_at_3(facts: UserMemory, per_user: int) -> tuple[float, float, list[float]]:
    """Recall@3 of the embeddings and of the word-overlap baseline, the pairs split into users of `per_user` facts."""
    users = [PAIRS[i : i + per_user] for i in range(0, len(PAIRS), per_user)]
    hits = lexical = 0
    latencies: list[float] = []
    for u, pairs in enumerate(users):
        user = f"U{per_user}-{u}"
        ids = [(await facts.add(user, fact, tenant="bench")).id for fact, _ in pairs]
        assert len(set(ids)) == len(pairs), "two benchmark facts were taken for duplicates"
        for (fact, question), fact_id in zip(pairs, ids):
            t0 = time.perf_counter()
            recalled = await facts.recall(user, question, tenant="bench", k=3)
            latencies.append(time.perf_counter() - t0)
            hits += fact_id in [f.id for f in recalled]
            q = _words(question)
            ranked = sorted(pairs, key=lambda p: -len(q & _words(p[0])))  # baseline: most shared words
            lexical += fact in [p[0] for p in ranked[:3]]
    return hits / len(PAIRS), lexical / len(PAIRS), latencies


class FactsEmbeddedAsStored(UserMemory):
    """The baseline: facts embedded in the third person they are stored in ("The user owns...")."""

    @property
    def vectors(self) -> str:
        return f"{self.embedder.name}/as-stored"

    async def _embed_facts(self, texts: list[str]):
        return await asyncio.to_thread(self.embedder.embed_documents, texts)


async def recall_part(folder: str, per_user: int) -> dict[str, Any]:
    store = SQLSessionStore(f"sqlite+aiosqlite:///{folder}/recall.db")
    facts = UserMemory(store)
    recall, lexical, latencies = await recall_at_3(facts, per_user)
    recall_all, lexical_all, _ = await recall_at_3(facts, len(PAIRS))
    as_stored = FactsEmbeddedAsStored(store, embedder=facts.embedder)
    stored_recall, _, _ = await recall_at_3(as_stored, per_user)
    await store.close()
    return {
        "pairs": len(PAIRS),
        "facts_per_user": per_user,
        "fact_recall_at_3": round(recall, 3),
        "baseline_word_overlap_recall_at_3": round(lexical, 3),
        "baseline_facts_embedded_as_stored_recall_at_3": round(stored_recall, 3),
        "all_pairs_in_one_user": {
            "facts_per_user": len(PAIRS),
            "fact_recall_at_3": round(recall_all, 3),
            "baseline_word_overlap_recall_at_3": round(lexical_all, 3),
        },
        "embedder": facts.embedder.name,
        "recall_p50_ms": _p(latencies, 50),
    }


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
    parser.add_argument("--parts", default="store,context,recall", help="which parts to run (comma-separated)")
    parser.add_argument("--turns", type=int, default=200, help="turns of the context part's conversation")
    parser.add_argument("--facts-per-user", type=int, default=20, help="recall part: the pairs split into users of this many facts")
    args = parser.parse_args()
    parts = args.parts.split(",")
    path = RESULTS / "memory.json"
    data = json.loads(path.read_text()) if path.exists() else {}  # keep the other parts' keys
    for key in ("benchmark", "date", "machine"):
        data.pop(key, None)
    with tempfile.TemporaryDirectory(prefix="llmos-bench-memory-") as folder:
        if "context" in parts:
            data["context"] = asyncio.run(context_part(folder, args.turns))
            c = data["context"]
            data["largest_request_tokens"] = c["largest_request_tokens"]
            data["prefix_stable_share"] = c["prefix_stable_share"]
            print_table(
                f"Context: {args.turns} turns, history budget {c['history_budget_tokens']} tokens",
                ["", "largest request (tokens)", "request budget", "prefix stable share", "summary refreshes"],
                [
                    ["with Memory", c["largest_request_tokens"], c["request_budget_tokens"], c["prefix_stable_share"], c["summary_refreshes"]],
                    ["whole history (baseline)", c["baseline_whole_history_largest_request_tokens"], "-", 1.0, 0],
                ],
            )
        if "recall" in parts:
            data["recall"] = asyncio.run(recall_part(folder, args.facts_per_user))
            r, one = data["recall"], data["recall"]["all_pairs_in_one_user"]
            data["fact_recall_at_3"] = r["fact_recall_at_3"]
            print_table(
                f"Recall: {r['pairs']} fact/question pairs",
                ["ranking", f"recall@3, {r['facts_per_user']} facts a user", f"recall@3, {one['facts_per_user']} facts a user"],
                [["embeddings (" + r["embedder"] + ")", r["fact_recall_at_3"], one["fact_recall_at_3"]],
                 ["embeddings, facts as stored (baseline)", r["baseline_facts_embedded_as_stored_recall_at_3"], "-"],
                 ["shared words (baseline)", r["baseline_word_overlap_recall_at_3"], one["baseline_word_overlap_recall_at_3"]]],
            )
    if "store" in parts:
        data.update(store_part(args))
    info = machine()
    if "cpu_model" not in info:
        data["cpu"] = _cpu()
    print(f"wrote {write_results('memory', data)}")


def store_part(args: argparse.Namespace) -> dict[str, Any]:
    """The store part's keys: append and load p50 on each backend."""
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
    data: dict[str, Any] = {}
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
    return data


if __name__ == "__main__":
    main()
