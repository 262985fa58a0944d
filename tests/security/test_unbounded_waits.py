"""Nothing a tool or a model server does can hold a run, or the tools of other runs, forever."""

from __future__ import annotations

import asyncio
import threading

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
