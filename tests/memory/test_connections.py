"""PostgreSQL: each running turn holds a connection for its session's lock, so a process's pool
bounds the turns it runs at once (LLMOS_MEMORY_MAX_CONNECTIONS); past it, a clear error."""

from __future__ import annotations

import pytest

from llmos.config import get_settings
from llmos.errors import DatabaseUnavailableError
from llmos.memory import SQLSessionStore

pytestmark = pytest.mark.postgres


@pytest.fixture
def max_connections(monkeypatch):
    monkeypatch.setenv("LLMOS_MEMORY_MAX_CONNECTIONS", "4")
    get_settings.cache_clear()
    yield 4
    get_settings.cache_clear()


async def test_turns_at_once_are_bounded_by_the_pool_and_past_it_the_error_says_which_setting(postgres_server, max_connections):
    url = postgres_server.create_database("pool")
    store = SQLSessionStore(url, timeout_s=1)
    try:
        for i in range(max_connections + 1):
            await store.create_session(f"s{i}")
        # Three running turns hold three connections; a fourth would take the last for its lock, leaving none to write its message.
        running = [await store.begin_turn(f"s{i}", "hello") for i in range(max_connections - 1)]
        with pytest.raises(DatabaseUnavailableError, match="LLMOS_MEMORY_MAX_CONNECTIONS"):
            await store.begin_turn(f"s{max_connections - 1}", "one too many")
        await running[0].finish([])  # a finished turn gives its connection back
        later = await store.begin_turn(f"s{max_connections}", "now there is room")
        await later.fail("test")
        for turn in running[1:]:
            await turn.fail("test")
    finally:
        await store.close()
