"""Rows from a company's own SQL database: the catalog, a customer's history and dated texts.

    columns, rows = read_rows("sqlite:///shop.db", "SELECT sku AS id, title AS name FROM products", what="The catalog query")
    _, owned = read_rows(url, "SELECT item_id FROM orders WHERE customer = :user", {"user": "C007"}, what="The history query")

Any SQLAlchemy URL works: a SQLite file, or `postgresql+psycopg://user@host/db`. The specialists call
their tools synchronously, so a URL written for the async session store (`sqlite+aiosqlite`,
`postgresql+asyncpg`) gets the sync driver of the same database. Values reach a query as bound
parameters (`:user`), never formatted into its text. Sources are read inside a transaction that is
rolled back, read-only where the database can say so (SQLite files open `mode=ro`, PostgreSQL
transactions are `READ ONLY`), so a query cannot change the company's data.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from llmos.errors import ConfigError, InvalidDataError

# Async drivers (and the bare names) mapped to the sync driver of the same database.
_SYNC_DRIVERS = {
    "sqlite+aiosqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+asyncpg": "postgresql+psycopg",
    "postgresql+psycopg_async": "postgresql+psycopg",
}
URL_HELP = "Write sqlite:///path/to/file.db or postgresql+psycopg://user@host:5432/dbname."


def sync_url(url: str | URL, base: Path | None = None) -> URL:
    """`url` with a sync driver, a relative SQLite path made absolute against `base` (default: the current folder).

    Raises ConfigError for what is not a database URL, or an in-memory SQLite database (nothing to share or keep).
    """
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        raise ConfigError(f"not a database URL. {URL_HELP}") from None
    parsed = parsed.set(drivername=_SYNC_DRIVERS.get(parsed.drivername, parsed.drivername))
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ConfigError(f"{shown(parsed)} is an in-memory SQLite database, empty and lost on exit; "
                              f"name a file. {URL_HELP}")
        path = Path(parsed.database).expanduser()
        parsed = parsed.set(database=str(path if path.is_absolute() else (base or Path.cwd()) / path))
    return parsed


def shown(url: str | URL) -> str:
    """The URL as it may appear in a message: password hidden."""
    try:
        return (make_url(url) if isinstance(url, str) else url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<not a URL>"


def bound_names(query: str) -> set[str]:
    """The bound parameters a query names (`:user` -> {"user"})."""
    return set(text(query).compile().params)


@lru_cache(maxsize=32)
def _engine(url: URL, read_only: bool) -> Engine:
    # One engine (one pool) per database and mode, shared by every source that reads it.
    if url.get_backend_name() == "sqlite" and read_only:
        # SQLite's own read-only mode: a query cannot write, and a missing file is an error rather than a new empty one.
        url = url.set(database=f"file:{quote(url.database)}?mode=ro", query={"uri": "true"})
    try:
        return create_engine(url, pool_pre_ping=url.get_backend_name() != "sqlite")
    except NoSuchModuleError:
        raise ConfigError(f"SQLAlchemy has no driver for {shown(url)}. {URL_HELP}") from None
    except ImportError as exc:
        raise ConfigError(f"The driver for {shown(url)} is not installed ({exc.name}): pip install 'llmos[memory]'.") from None


def engine_for(url: URL, *, read_only: bool = False) -> Engine:
    """The shared engine of a sync URL (see `sync_url`)."""
    return _engine(url, read_only)


def read_rows(url: str | URL, query: str, params: dict[str, Any] | None = None, *, what: str,
              base: Path | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns of `query` and its rows as dicts of column -> value. InvalidDataError names `what`, the database and the
    database's own reason when the query fails (a missing table, a syntax error, a database that is down)."""
    url = sync_url(url, base)
    if url.get_backend_name() == "sqlite" and not Path(url.database).is_file():
        raise InvalidDataError(f"{what}: no SQLite file {url.database}. {URL_HELP}")
    params = params or {}
    unbound = bound_names(query) - set(params)
    if unbound:
        given = ", ".join(f":{p}" for p in params) or "none"
        raise InvalidDataError(f"{what} names :{', :'.join(sorted(unbound))}, which llmos does not give "
                               f"(it gives: {given}). Remove it, or write the value into the query.")
    try:
        with engine_for(url, read_only=True).connect() as connection:
            if url.get_backend_name() == "postgresql":
                connection.execute(text("SET TRANSACTION READ ONLY"))
            result = connection.execute(text(query), params)
            if not result.returns_rows:
                raise InvalidDataError(f"{what} returns no rows; write a SELECT.")
            columns = list(result.keys())
            rows = [dict(zip(columns, row)) for row in result]
            connection.rollback()
    except DBAPIError as exc:
        reason = " ".join(str(exc.orig if exc.orig is not None else exc).split())[:300]
        if url.password:
            reason = reason.replace(str(url.password), "***")
        raise InvalidDataError(f"{what} failed on {shown(url)} ({reason}). Check the query and the URL.") from None
    except SQLAlchemyError as exc:
        raise InvalidDataError(f"{what} cannot run on {shown(url)} ({exc}).") from None
    return columns, rows
