"""The session database: its URL, its async engine, and the errors that name it.

SQLite (aiosqlite) is the default: a file under LLMOS_HOME, for one machine. PostgreSQL
(psycopg) is for several processes or replicas sharing sessions. Every error shows the URL
with its password hidden.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from llmos.errors import DatabaseUnavailableError, DatabaseURLError

# Sync drivers (and the bare names) mapped to the async driver the store uses.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg2": "postgresql+psycopg",
    "postgresql+psycopg_async": "postgresql+psycopg",
}
SUPPORTED = ("sqlite+aiosqlite", "postgresql+psycopg")
_URL_HELP = "Use sqlite+aiosqlite:///path/to/memory.db or postgresql+psycopg://user:password@host:5432/dbname."


def default_url(home: Path) -> str:
    return f"sqlite+aiosqlite:///{home / 'memory.db'}"


def parse_url(url: str) -> URL:
    """The URL with an async driver; DatabaseURLError when it is malformed or not a database the store supports."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseURLError(f"The session database URL is not a database URL. {_URL_HELP}") from None
    parsed = parsed.set(drivername=_ASYNC_DRIVERS.get(parsed.drivername, parsed.drivername))
    if parsed.drivername not in SUPPORTED:
        raise DatabaseURLError(
            f"The session database URL {shown(parsed)} names '{parsed.drivername}', which the store does not support. "
            + _URL_HELP
        )
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise DatabaseURLError(
            "The session database must be a file (an in-memory SQLite database is lost on exit "
            "and is not shared between connections). " + _URL_HELP
        )
    return parsed


def shown(url: URL | str) -> str:
    """The URL as it may appear in a message or a log: password hidden."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except ArgumentError:
            return "<unparsable URL>"
    return url.render_as_string(hide_password=True)


def create_engine(url: URL, *, timeout_s: float, max_connections: int = 100) -> AsyncEngine:
    """An async engine; on SQLite, WAL, full fsync at commit, foreign keys, and BEGIN IMMEDIATE.

    timeout_s: how long a statement waits for a locked SQLite file, or for a PostgreSQL connection.
    max_connections: PostgreSQL: the pool's limit. Each running turn holds a connection for its
        session's advisory lock, so this bounds the turns one process runs at once.
    """
    try:
        if url.get_backend_name() == "sqlite":
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(url, connect_args={"timeout": timeout_s})
            _sqlite_setup(engine)
            return engine
        args = {"connect_timeout": max(2, round(timeout_s))} if url.drivername == "postgresql+psycopg" else {}
        kept = min(10, max_connections)  # opened on demand up to max_connections, 10 kept open when idle
        return create_async_engine(
            url, connect_args=args, pool_size=kept, max_overflow=max_connections - kept, pool_pre_ping=True,
            pool_timeout=timeout_s,
        )
    except NoSuchModuleError:
        raise DatabaseURLError(f"No driver for {shown(url)}. " + _URL_HELP) from None
    except ImportError as exc:
        raise DatabaseURLError(
            f"The driver for {shown(url)} is not installed ({exc.name}): pip install 'llmos[memory]'."
        ) from None


def _sqlite_setup(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # The driver's own transaction handling is turned off: the "begin" hook below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers do not wait for the writer
        cursor.execute("PRAGMA synchronous=FULL")  # a commit is on disk before it returns: acknowledged means kept
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        # IMMEDIATE takes the write lock at the start: a transaction that reads then writes
        # cannot fail half-way with "database is locked" (SQLite's deferred upgrade deadlock).
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def unavailable(url: URL, exc: DBAPIError) -> DatabaseUnavailableError:
    """The error for a database that is down, unreachable or locked: names it, never its password."""
    reason = str(exc.orig) if exc.orig is not None else str(exc)
    if url.password:
        reason = reason.replace(str(url.password), "***")
    reason = " ".join(reason.split())[:300]
    if url.get_backend_name() == "sqlite":
        if "locked" in reason or "busy" in reason:
            what = (
                f"The session database {url.database} is locked by another process or connection "
                "for longer than the store waits"
            )
            todo = "Find what holds it (a long transaction, a backup), or raise the store's timeout_s."
        else:
            what = f"The session database {url.database} cannot be opened or written"
            todo = "Check that its folder exists and is writable, and that the disk is not full."
    else:
        what = f"The session database {shown(url)} cannot be reached"
        todo = "Check that the server is running and the URL is right (LLMOS_MEMORY_URL)."
    return DatabaseUnavailableError(f"{what}: {reason}. {todo}")


@asynccontextmanager
async def translated_errors(url: URL) -> AsyncIterator[None]:
    """Turn the driver's connection and lock errors into a DatabaseUnavailableError that names the database."""
    try:
        yield
    except OperationalError as exc:
        raise unavailable(url, exc) from None
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise unavailable(url, exc) from None
        raise
    except OSError as exc:  # e.g. the connection refused before the driver wrapped it
        raise DatabaseUnavailableError(f"The session database {shown(url)} cannot be reached: {exc}.") from None
    except PoolTimeoutError:
        raise DatabaseUnavailableError(
            f"Every connection of this process to the session database {shown(url)} is in use (each running turn "
            "holds one for its session's lock). Raise LLMOS_MEMORY_MAX_CONNECTIONS (and PostgreSQL's "
            "max_connections to match), or spread the load over more processes."
        ) from None
