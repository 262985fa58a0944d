"""A process writing turns is killed with SIGKILL at 20 random moments; nothing acknowledged is lost,
no turn is half-written, and every session takes new turns afterwards. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import fcntl
import multiprocessing
import os
import random
import select
import signal
import time

from llmos.llm.messages import AssistantMessage, ToolCall, ToolMessage
from llmos.memory import SQLSessionStore, TurnRecord

SESSIONS = [f"s{i}" for i in range(3)]
KILLS = 20


def run_answer(n: str) -> list:
    """What a run adds: a tool call, its result, the answer."""
    call = ToolCall.make("lookup", {"n": n}, id=f"call_{n}")
    return [
        AssistantMessage(tool_calls=[call]),
        ToolMessage(tool_call_id=call.id, name="lookup", content=f"result {n}"),
        AssistantMessage(content=f"answer {n}"),
    ]


def writer(url: str, out: int, seed: int) -> None:
    """The child: writes turns until it is killed; reports each acknowledged message and each finished turn."""

    async def main() -> None:
        rng = random.Random(seed)
        store = SQLSessionStore(url, lock_timeout_s=30)
        i = 0
        while True:
            i += 1
            text = f"message {seed}-{i}"
            turn = await store.begin_turn(rng.choice(SESSIONS), text)
            os.write(out, f"ack {turn.id} {text}\n".encode())  # one write under PIPE_BUF: whole or nothing
            await asyncio.sleep(rng.uniform(0.005, 0.03))  # the "run"
            await turn.finish(run_answer(f"{seed}-{i}"), TurnRecord(outcome="ok", model_calls=2))
            os.write(out, f"done {turn.id}\n".encode())

    asyncio.run(main())


def read_lines(fd: int) -> list[str]:
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    return data.decode().splitlines()


def wait_for_ack(fd: int, timeout_s: float) -> list[str]:
    """Lines up to and including the first 'ack' (or whatever came within the timeout)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        lines += read_lines(fd)
        if any(line.startswith("ack") for line in lines):
            break
    return lines


def test_killed_writers_lose_nothing_acknowledged_and_leave_no_half_turn(db_url):
    async def setup() -> None:
        store = SQLSessionStore(db_url)
        for s in SESSIONS:
            await store.create_session(s)
        await store.close()  # no connection or driver thread is left for the children to inherit

    asyncio.run(setup())
    rng = random.Random(1234)
    read_end, write_end = os.pipe()
    fcntl.fcntl(read_end, fcntl.F_SETFL, os.O_NONBLOCK)
    fork = multiprocessing.get_context("fork")
    lines: list[str] = []
    try:
        for k in range(KILLS):
            child = fork.Process(target=writer, args=(db_url, write_end, k), daemon=True)
            child.start()
            try:
                if k % 2:  # a moment anywhere in its life, start-up included
                    time.sleep(rng.uniform(0.0, 0.5))
                else:  # a moment inside a turn: just after a message was acknowledged
                    lines += wait_for_ack(read_end, 20)
                    time.sleep(rng.uniform(0.0, 0.02))
            finally:
                os.kill(child.pid, signal.SIGKILL)
                child.join()  # reaped: a lease held by a dead process is taken over at once
            lines += read_lines(read_end)
    finally:
        os.close(write_end)
        lines += read_lines(read_end)
        os.close(read_end)

    acked = {int(line.split()[1]): line.split(maxsplit=2)[2] for line in lines if line.startswith("ack")}
    done = {int(line.split()[1]) for line in lines if line.startswith("done")}
    assert len(acked) >= KILLS // 2  # every "inside a turn" kill came after an acknowledgement

    async def check() -> None:
        store = SQLSessionStore(db_url, lock_timeout_s=5)  # a lock left by a dead writer would fail this
        try:
            turns = {t.id: t for s in SESSIONS for t in await store.turns(s)}
            for turn_id, text in acked.items():  # every acknowledged message is there
                assert turns[turn_id].user_message.message.content == text
            for turn_id in done:
                assert turns[turn_id].status == "answered"
            unanswered = []
            for t in turns.values():
                n = t.user_message.message.content.removeprefix("message ")
                if t.status == "answered":  # complete: all three messages and the record
                    assert [m.message for m in t.messages] == run_answer(n)
                    assert t.record is not None and t.record.outcome == "ok"
                else:  # nothing of a half-written answer
                    assert t.status == "unanswered" and t.messages == [] and t.record is None
                    unanswered.append(t)
            assert unanswered, "no kill landed inside a turn"
            for s in SESSIONS:
                session_turns = await store.turns(s)
                assert [t.number for t in session_turns] == list(range(1, len(session_turns) + 1))
                seqs = sorted(m.seq for t in session_turns for m in [t.user_message, *t.messages])
                assert seqs == list(range(1, len(seqs) + 1))

            for t in unanswered:  # each can be retried...
                retry = await store.resume_turn(t.id)
                n = t.user_message.message.content.removeprefix("message ")
                assert (await retry.finish(run_answer(n))).status == "answered"
            for s in SESSIONS:  # ...and every session takes new turns
                turn = await store.begin_turn(s, "after the crashes")
                await turn.finish([AssistantMessage(content="still here")])
                assert (await store.history(s))[-1].content == "still here"
        finally:
            await store.close()

    asyncio.run(check())
