"""`llmos serve` killed with SIGKILL while 50 chats are in flight, then started again on the same database.

On one machine's deployment (SQLite sessions, no keys) and on the one past it (sessions and
API keys in PostgreSQL, every request with a key).

Every message the server acknowledged (its client got the first event of the answer stream,
sent after the message is committed) is in its session; no answer that was being written when
the server died reads as complete (its turn is listed as unanswered, with no assistant message);
answers the clients got in full are stored in full; and every session takes new turns afterwards.

The server is a real child process (`llmos serve --team tests.server.test_kill:served`): its model
streams answers to messages that ask for a long one word by word, slowly, so that they are
always mid-answer when the kill comes; the kill comes once counts are reached, never after a
fixed time: every chat acknowledged, every short answer complete, every long one streaming.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from llmos.agents import Agent
from llmos.llm import AssistantMessage, ChatModel, ChatRequest, ChatResponse, TextDelta, Usage
from llmos.memory import SQLSessionStore
from llmos.memory.testing import TempPostgres
from tests.server.conftest import make_key

ROOT = Path(__file__).resolve().parents[2]
CHATS = 50
SHORT_WORDS = 6
LONG_WORDS = 100_000  # never finished: the server is killed first
LONG_WORD_S = 0.2  # between the words of a long answer
SAFETY_S = 300.0  # only if the server stops making progress; the test waits on counts


# --- what the child process serves ----------------------------------------------------------


def answer_to(text: str, words: int = SHORT_WORDS) -> str:
    return f"Re {text}:" + "".join(f" w{k}" for k in range(words))


class WordByWordModel(ChatModel):
    """Answers `answer_to(message)`, streamed a word at a time; slowly and without end for a 'long' message."""

    name = "word-by-word"

    async def _stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | ChatResponse]:
        text = request.messages[-1].content or ""
        long = text.startswith("long")
        answer = answer_to(text, LONG_WORDS if long else SHORT_WORDS)
        for piece in re.findall(r"\s*\S+", answer):
            await asyncio.sleep(LONG_WORD_S if long else 0.01)
            yield TextDelta(text=piece)
        message = AssistantMessage(content=answer)
        yield ChatResponse(model=self.name, message=message, usage=Usage(prompt_tokens=10, completion_tokens=10))


def served(model: str | None) -> tuple[str, Agent]:
    """The factory `llmos serve --team tests.server.test_kill:served` calls."""
    return "chat", Agent("chat", model=WordByWordModel())


# --- the server as a child process ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def llmos_serve(env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """`llmos serve` on a free port, ready (healthz answers); killed by its PID when the block ends."""
    port = free_port()
    command = [sys.executable, "-c", "from llmos.cli import main; main()", "serve",
               "--team", "tests.server.test_kill:served", "--port", str(port), "--grace", "2"]
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"llmos serve exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"llmos serve did not answer /healthz:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield process, url
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


# --- the clients ------------------------------------------------------------------------------


@dataclass
class Chat:
    session: str
    text: str
    native: bool  # POST /v1/sessions/{id}/messages; else /v1/chat/completions with X-LLMOS-Session
    acknowledged: bool = False
    streamed: str = ""  # answer text received so far
    answer: str | None = None  # the whole answer, when the client received its end

    @property
    def long(self) -> bool:
        return self.text.startswith("long")


@dataclass
class Progress:
    chats: list[Chat]
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def kill_now(self) -> bool:
        """Every chat acknowledged, every short answer received whole, every long one streaming."""
        return all(c.acknowledged and (c.streamed if c.long else c.answer is not None) for c in self.chats)


def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    async def data() -> AsyncIterator[str]:
        async for line in lines:
            if line.startswith("data: "):
                yield line[6:]

    return data()


async def follow(client: httpx.AsyncClient, chat: Chat, progress: Progress) -> None:
    """Send the chat's message and read its answer until it ends or the connection dies."""
    if chat.native:
        request = client.build_request("POST", f"/v1/sessions/{chat.session}/messages", json={"content": chat.text})
    else:
        request = client.build_request(
            "POST", "/v1/chat/completions", headers={"X-LLMOS-Session": chat.session},
            json={"model": "chat", "stream": True, "messages": [{"role": "user", "content": chat.text}]},
        )
    try:
        response = await client.send(request, stream=True)
        assert response.status_code == 200, (response.status_code, await response.aread())
        async for data in sse_data(response.aiter_lines()):
            chat.acknowledged = True
            if chat.native:
                event = json.loads(data)
                if event["type"] == "text_delta":
                    chat.streamed += event["text"]
                elif event["type"] == "final":
                    chat.answer = event["text"]
            elif data != "[DONE]":
                choice = json.loads(data)["choices"][0]
                chat.streamed += choice["delta"].get("content") or ""
                if choice["finish_reason"] == "stop":
                    chat.answer = chat.streamed
            progress.changed.set()
    except (httpx.TransportError, httpx.StreamError):
        pass  # the server was killed


@dataclass
class Deployment:
    env: dict[str, str]  # the server's settings
    headers: dict[str, str]  # what every request carries
    tenant: str


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def deployment(request, tmp_path) -> Iterator[Deployment]:
    if request.param == "sqlite":  # one machine: nothing to configure but the file
        yield Deployment(
            {"LLMOS_MEMORY_URL": f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}",
             "LLMOS_SERVER_KEYS_URL": f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"},
            {}, "local",
        )
        return
    # llmos is killed here, never PostgreSQL. Room for the killed server's backends, which PostgreSQL ends only
    # once it notices, beside the restarted server's new pool (up to 100 connections each).
    server = TempPostgres(settings={"fsync": "off", "max_connections": "300"})
    try:
        server.start()
        url = server.create_database("kill")
        secret = make_key(url, "acme", user="C001")
        yield Deployment(
            {"LLMOS_MEMORY_URL": url, "LLMOS_SERVER_KEYS_URL": url}, {"Authorization": f"Bearer {secret}"}, "acme"
        )
    finally:
        server.stop()


async def until_killed(url: str, headers: dict[str, str], chats: list[Chat], kill) -> None:
    """Create the sessions, start every chat at once, kill the server when the counts are reached."""
    limits = httpx.Limits(max_connections=CHATS + 10, max_keepalive_connections=CHATS + 10)
    timeout = httpx.Timeout(120, connect=30)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout, limits=limits) as client:
        for chat in chats:
            r = await client.post("/v1/sessions", json={"id": chat.session})
            assert r.status_code == 201, r.text
        progress = Progress(chats)
        tasks = [asyncio.create_task(follow(client, chat, progress)) for chat in chats]
        deadline = time.monotonic() + SAFETY_S
        while not progress.kill_now():
            assert time.monotonic() < deadline, f"no progress: {sum(c.acknowledged for c in chats)} acknowledged"
            for task in tasks:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # a chat failed before the kill: no need to wait for the rest
            progress.changed.clear()
            try:
                await asyncio.wait_for(progress.changed.wait(), 5)
            except TimeoutError:
                pass
        kill()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)


async def next_turns(url: str, headers: dict[str, str], chats: list[Chat]) -> dict[str, dict]:
    """After the restart: a new message to every session, at once; then each session as a client reads it."""
    limits = httpx.Limits(max_connections=CHATS + 10)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, limits=limits) as client:

        async def again(chat: Chat) -> str:
            async with client.stream(
                "POST", f"/v1/sessions/{chat.session}/messages", json={"content": f"again {chat.session}"}
            ) as r:
                assert r.status_code == 200, await r.aread()
                events = [json.loads(d) async for d in sse_data(r.aiter_lines())]
            assert events[-1]["type"] == "final", events[-1]
            return events[-1]["text"]

        answers = await asyncio.gather(*(again(c) for c in chats))
        assert answers == [answer_to(f"again {c.session}") for c in chats]
        details = {}
        for chat in chats:
            r = await client.get(f"/v1/sessions/{chat.session}")
            assert r.status_code == 200, r.text
            details[chat.session] = r.json()
        return details


def test_a_killed_server_keeps_every_acknowledged_message_and_no_half_answer(tmp_path, deployment):
    env = {
        **os.environ,
        **deployment.env,
        "PYTHONPATH": str(ROOT),
        "LLMOS_HOME": str(tmp_path / "home"),
        "LLMOS_SERVER_RATE_LIMIT_PER_MINUTE": "0",
        "LLMOS_SERVER_REMEMBER_FACTS": "false",  # facts would be extracted by the test's model
    }
    log = tmp_path / "serve.log"
    chats = [
        Chat(f"chat-{i:02d}", f"{'long' if (i // 2) % 2 else 'short'} question {i}", native=i % 2 == 0)
        for i in range(CHATS)
    ]

    with llmos_serve(env, log) as (process, url):
        asyncio.run(until_killed(url, deployment.headers, chats, lambda: os.kill(process.pid, signal.SIGKILL)))
        assert process.wait(timeout=30) == -signal.SIGKILL

    long_chats = [c for c in chats if c.long]
    short_chats = [c for c in chats if not c.long]
    # What the clients saw at the kill: answers being written, and whole ones.
    assert all(c.streamed and c.answer is None for c in long_chats)
    assert all(c.answer == answer_to(c.text) for c in short_chats)

    with llmos_serve(env, log) as (process, url):
        details = asyncio.run(next_turns(url, deployment.headers, chats))
        os.kill(process.pid, signal.SIGTERM)  # a graceful stop this time (uvicorn re-raises the signal once stopped)
        assert process.wait(timeout=60) in (0, -signal.SIGTERM), log.read_text()[-3000:]
        assert "Application shutdown complete" in log.read_text()

    for chat in chats:
        detail = details[chat.session]
        said = [(m["turn"], m["role"], m["content"]) for m in detail["messages"]]
        again = [(2, "user", f"again {chat.session}"), (2, "assistant", answer_to(f"again {chat.session}"))]
        if chat.long:  # acknowledged, its answer cut off by the kill: the message is kept, unanswered
            assert said == [(1, "user", chat.text), *again], chat
            assert detail["unanswered"] == [1] and detail["running_turn"] is None
        else:  # answered before the kill: the answer the client received, whole
            assert said == [(1, "user", chat.text), (1, "assistant", chat.answer), *again], chat
            assert detail["unanswered"] == []

    async def stored() -> dict[str, list]:
        store = SQLSessionStore(env["LLMOS_MEMORY_URL"])
        try:
            return {c.session: await store.turns(c.session, tenant=deployment.tenant) for c in chats}
        finally:
            await store.close()

    turns = asyncio.run(stored())
    for chat in chats:  # nothing of the cut-off answers was written: no partial message, no record
        first, second = turns[chat.session]
        assert second.status == "answered"
        if chat.long:
            assert first.status == "unanswered" and first.messages == [] and first.record is None
        else:
            assert first.status == "answered" and [m.message.content for m in first.messages] == [chat.answer]
