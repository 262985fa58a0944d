"""The schema's migrations, and the errors of a bad URL or a database that is down or locked."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from llmos.errors import ConfigError, DatabaseUnavailableError, DatabaseURLError, SchemaError
from llmos.llm.messages import AssistantMessage
from llmos.memory import SQLSessionStore, migrate
from llmos.memory.schema import metadata
from llmos.memory.testing import free_port


async def test_migrating_an_empty_database_gives_exactly_the_schema_the_code_uses(store):
    await store.create_session("s")
    async with store.engine.connect() as connection:
        assert await connection.run_sync(migrate.current) == migrate.head()

        def differences(sync_connection):
            context = MigrationContext.configure(sync_connection, opts={"version_table": migrate.VERSION_TABLE})
            return compare_metadata(context, metadata)

        assert await connection.run_sync(differences) == []


async def test_reopening_keeps_the_data_and_a_newer_schema_is_refused(db_url):
    first = SQLSessionStore(db_url)
    await first.create_session("s")
    await (await first.begin_turn("s", "hi")).finish([AssistantMessage(content="hello")])
    await first.close()

    again = SQLSessionStore(db_url)  # a restart: nothing migrates twice, nothing is lost
    assert [m.content for m in await again.history("s")] == ["hi", "hello"]
    async with again.engine.begin() as connection:
        await connection.execute(sa.text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = '9999'"))
    await again.close()

    newer = SQLSessionStore(db_url)
    with pytest.raises(SchemaError, match="schema revision '9999', newer than this llmos knows"):
        await newer.get_session("s")
    await newer.close()


async def test_two_stores_opening_a_fresh_database_at_once_migrate_it_once(db_url):
    import asyncio

    stores = [SQLSessionStore(db_url) for _ in range(3)]
    try:
        await asyncio.gather(*(s.create_session(f"s{i}") for i, s in enumerate(stores)))
        assert len(await stores[0].list_sessions()) == 3
    finally:
        for s in stores:
            await s.close()


@pytest.mark.parametrize(
    "url, expected",
    [
        ("not a url", "not a database URL"),
        ("mysql+aiomysql://u:hunter2@db/x", r"names 'mysql\+aiomysql', which the store does not support"),
        ("sqlite+aiosqlite://", "must be a file"),
        ("sqlite+aiosqlite:///:memory:", "must be a file"),
    ],
)
def test_a_bad_url_is_refused_with_what_to_use(url, expected):
    with pytest.raises(DatabaseURLError, match=expected) as caught:
        SQLSessionStore(url)
    assert "hunter2" not in str(caught.value)
    assert "postgresql+psycopg://" in str(caught.value)
    assert isinstance(caught.value, ConfigError)


def test_sync_driver_urls_get_the_async_driver(tmp_path):
    assert SQLSessionStore(f"sqlite:///{tmp_path}/m.db").url.drivername == "sqlite+aiosqlite"
    assert SQLSessionStore("postgresql://u:p@localhost/db").url.drivername == "postgresql+psycopg"
    assert SQLSessionStore("postgres://u:p@localhost/db").url.drivername == "postgresql+psycopg"


async def test_bad_names_are_refused(store):
    with pytest.raises(ConfigError, match="session id must be a non-blank string"):
        await store.create_session("  ")
    with pytest.raises(ConfigError, match="tenant must be"):
        await store.create_session("s", tenant="t" * 201)


@pytest.mark.postgres
async def test_a_postgres_server_that_is_down_is_named_without_its_password():
    url = f"postgresql+psycopg://llmos:s3cr3t-pw@127.0.0.1:{free_port()}/memory"
    store = SQLSessionStore(url, timeout_s=2)
    with pytest.raises(DatabaseUnavailableError) as caught:
        await store.list_sessions()
    message = str(caught.value)
    assert "cannot be reached" in message and f"127.0.0.1:{store.url.port}/memory" in message
    assert "s3cr3t-pw" not in message and "***" in message
    await store.close()


async def test_a_locked_sqlite_file_is_named_and_nothing_stored_is_lost(tmp_path):
    path = tmp_path / "memory.db"
    store = SQLSessionStore(f"sqlite:///{path}", timeout_s=0.2)
    await store.create_session("s")
    await (await store.begin_turn("s", "kept")).finish([AssistantMessage(content="yes")])

    other = sqlite3.connect(path, isolation_level=None)  # another process holds the write lock
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(DatabaseUnavailableError, match=rf"{path} is locked by another process"):
            await store.begin_turn("s", "refused")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert [m.content for m in await store.history("s")] == ["kept", "yes"]
    turn = await store.begin_turn("s", "works again")
    await turn.finish([AssistantMessage(content="ok")])
    await store.close()
