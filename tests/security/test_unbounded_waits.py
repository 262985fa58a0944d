"""Nothing a tool or a model server does can hold a run, or the tools of other runs, forever."""

from __future__ import annotations

import asyncio
import threading

import pytest

from llmos.tools import calculator, tool


async def test_hung_sync_tools_do_not_starve_the_others():
    release = threading.Event()

    @tool(timeout=0.2)
    def hang() -> str:
        """Never returns on its own."""
        release.wait(30)
        return "late"

    try:
        # More hung calls than the default thread pool of a 2-core machine has threads.
        hung = await asyncio.gather(*(hang.run("{}") for _ in range(16)))
        assert all(r.is_error and "timed out" in r.content for r in hung)
        result = await asyncio.wait_for(calculator.run('{"expression": "1+1"}'), 5)
        assert not result.is_error and result.content == "2"
    finally:
        release.set()


async def test_a_sync_tools_exception_reaches_the_model():
    @tool
    def fails() -> str:
        """Fails."""
        raise ValueError("bad input")

    result = await fails.run("{}")
    assert result.is_error and "ValueError: bad input" in result.content


async def _serve(handler) -> tuple[asyncio.AbstractServer, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1"


async def test_a_silent_server_fails_within_the_retry_budget():
    import httpx

    from llmos.errors import ModelConnectionError
    from llmos.llm import UserMessage
    from llmos.llm.openai import OpenAIModel
    from llmos.llm.model import ChatRequest

    async def silent(reader, writer):
        await reader.read(65536)
        await asyncio.sleep(3600)  # accepts, reads the request, never answers

    server, url = await _serve(silent)
    model = OpenAIModel("m", url, timeout=httpx.Timeout(1.0, connect=1.0), max_retries=10, retry_budget_s=1.5)
    started = asyncio.get_running_loop().time()
    try:
        with pytest.raises(ModelConnectionError, match="in time|within 1.5 s"):
            await model.chat(ChatRequest(messages=[UserMessage(content="hi")]))
    finally:
        server.close()
        await model.aclose()
    # Ten retries of a 1 s read timeout would take over 10 s; the budget stops it near 1.5 s.
    assert asyncio.get_running_loop().time() - started < 4.0


async def test_a_trickling_server_is_stopped_by_the_runs_wall_time_budget():
    from llmos.agents import Agent, Budget
    from llmos.errors import BudgetExceededError
    from llmos.llm.openai import OpenAIModel

    async def trickle(reader, writer):
        await reader.read(65536)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        chunk = b'data: {"choices": [{"index": 0, "delta": {"content": "a"}}]}\n\n'
        while True:  # one piece every 0.2 s, forever: no read timeout ever trips
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            await asyncio.sleep(0.2)

    server, url = await _serve(trickle)
    model = OpenAIModel("m", url)
    agent = Agent("a", model=model, budget=Budget(max_seconds=1.0))
    started = asyncio.get_running_loop().time()
    try:
        with pytest.raises(BudgetExceededError, match="wall-time"):
            await agent.run("Say hi.")
    finally:
        server.close()
        await model.aclose()
    assert asyncio.get_running_loop().time() - started < 4.0
