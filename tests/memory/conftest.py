"""The conformance suite runs every test on SQLite and on a real PostgreSQL server.

The server is this session's own cluster in a temporary folder (`postgres_server` in tests/conftest.py),
stopped by its PID when the session ends, also after failures. Its tests carry the `postgres` marker:
`pytest -m "not postgres"` runs the SQLite half alone.
"""

from __future__ import annotations

import uuid

import pytest

from llmos.memory import SQLSessionStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    """An empty database of each backend, for one test."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}"
    return request.getfixturevalue("postgres_server").create_database("t_" + uuid.uuid4().hex[:12])


@pytest.fixture
async def store(db_url):
    store = SQLSessionStore(db_url, lock_timeout_s=10)
    yield store
    await store.close()
