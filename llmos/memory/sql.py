"""The session store on SQLAlchemy's asyncio engine: SQLite by default, PostgreSQL for shared sessions.

    store = SQLSessionStore()                                    # LLMOS_HOME/memory.db
    store = SQLSessionStore("postgresql+psycopg://llmos@db/llmos")  # several processes

The schema is migrated (llmos.memory.migrate) on first use. Each method is one transaction,
except begin_turn and finish_turn, which take and release the session's lock around theirs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from llmos.config import get_settings
from llmos.errors import (
    ConfigError,
    DatabaseUnavailableError,
    SessionExistsError,
    TurnAnsweredError,
    TurnStateError,
    UnknownSessionError,
    UnknownTenantError,
    UnknownUserError,
)
from llmos.llm.messages import Message, UserMessage
from llmos.memory import migrate
from llmos.memory.database import create_engine, default_url, parse_url, shown, translated_errors
from llmos.memory.locks import AdvisoryLocks, LeaseLocks, OnBusy, SessionLocks
from llmos.memory.models import (
    DEFAULT_TENANT,
    Entry,
    SessionInfo,
    SessionMode,
    StoredMessage,
    Summary,
    Turn,
    TurnRecord,
    as_entry,
)
from llmos.memory.schema import messages as messages_t
from llmos.memory.schema import session_summaries as summaries_t
from llmos.memory.schema import sessions as sessions_t
from llmos.memory.schema import tenants as tenants_t
from llmos.memory.schema import turns as turns_t
from llmos.memory.schema import users as users_t
from llmos.memory.store import ActiveTurn, SessionStore

_MESSAGE = TypeAdapter(Message)
_MIGRATION_WAIT_S = 120.0  # how long opening a fresh SQLite database waits for other stores migrating it
_MIGRATION_LOCK = 0  # advisory key (in llmos's namespace) held while a PostgreSQL schema migrates
_NAME_MAX = 200


class SQLSessionStore(SessionStore):
    """Sessions in a SQL database.

    url: any SQLAlchemy URL of SQLite or PostgreSQL (default: LLMOS_MEMORY_URL, else
        sqlite under LLMOS_HOME). `postgresql://` and `sqlite:///` get the async drivers.
    on_busy: a message for a session whose turn is running waits ("wait") or is refused ("refuse").
    lock_timeout_s: how long it waits.
    timeout_s: how long a statement waits for a locked SQLite file or a PostgreSQL connection.
    lease_s: SQLite only: how long a turn's lease on its session lasts without renewal (renewed while it runs).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        on_busy: OnBusy | None = None,
        lock_timeout_s: float | None = None,
        timeout_s: float = 10.0,
        lease_s: float = 60.0,
    ) -> None:
        settings = get_settings()
        self.url = parse_url(url or settings.memory_url or default_url(settings.home))
        self.database = shown(self.url)
        self.engine = create_engine(self.url, timeout_s=timeout_s, max_connections=settings.memory_max_connections)
        self.postgres = self.url.get_backend_name() == "postgresql"
        on_busy = on_busy or settings.memory_on_busy
        lock_timeout_s = settings.memory_lock_timeout if lock_timeout_s is None else lock_timeout_s
        self.locks: SessionLocks = (
            AdvisoryLocks(self.engine, on_busy=on_busy, timeout_s=lock_timeout_s)
            if self.postgres
            else LeaseLocks(self.engine, on_busy=on_busy, timeout_s=lock_timeout_s, lease_s=lease_s)
        )
        self._migrated = False
        self._migrating = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SQLSessionStore({self.database!r})"

    # --- plumbing --------------------------------------------------------------------

    async def _ready(self) -> None:
        """Migrate the schema once per store; the migration lock keeps two processes from racing."""
        if self._migrated:
            return
        async with self._migrating:
            if self._migrated:
                return
            # Read the migration scripts before taking the lock: other stores wait on it, and on
            # a busy machine the first read (alembic, mako) takes seconds of their lock timeout.
            await asyncio.to_thread(migrate.head)
            deadline = time.monotonic() + _MIGRATION_WAIT_S
            while True:
                try:
                    async with translated_errors(self.url), self.engine.begin() as connection:
                        if self.postgres:
                            await connection.execute(
                                sa.text("SELECT pg_advisory_xact_lock(:ns, :key)"),
                                {"ns": 0x6C6C6D6F, "key": _MIGRATION_LOCK},
                            )
                        # On SQLite the transaction began IMMEDIATE: it already holds the file's write lock.
                        await connection.run_sync(migrate.upgrade, self.database)
                    break
                except DatabaseUnavailableError as exc:
                    # Several processes opening one fresh SQLite file queue for its write lock;
                    # on a busy machine that queue can outlast one statement's timeout.
                    if self.postgres or "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)
            self._migrated = True

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction on the migrated database (what llmos.memory.facts writes through)."""
        async with self._transaction() as connection:
            yield connection

    async def ensure_user(self, connection: AsyncConnection, tenant: str, user: str) -> None:
        """Create the tenant and the user when they do not exist yet."""
        tenant, user, now = _name("tenant", tenant), _name("user", user), _now()
        await connection.execute(self._insert_ignore(tenants_t, id=tenant, created_at=now))
        await connection.execute(self._insert_ignore(users_t, tenant_id=tenant, id=user, created_at=now))

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        await self._ready()
        async with translated_errors(self.url), self.engine.begin() as connection:
            yield connection

    def _insert_ignore(self, table: sa.Table, **values: Any) -> sa.Insert:
        """INSERT that does nothing when the row exists (two processes may create a tenant at once)."""
        insert = postgresql.insert(table) if self.postgres else sqlite.insert(table)
        return insert.values(**values).on_conflict_do_nothing()

    async def _session_row(self, connection: AsyncConnection, id: str, tenant: str) -> sa.Row[Any]:
        row = (
            await connection.execute(
                sa.select(sessions_t).where(sessions_t.c.tenant_id == tenant, sessions_t.c.id == id)
            )
        ).first()
        if row is None:
            raise UnknownSessionError(
                f"There is no session '{id}' in tenant '{tenant}' in {self.database}. Create it with "
                f"create_session('{id}', tenant='{tenant}') or open_session, or list the tenant's sessions."
            )
        return row

    # --- sessions ---------------------------------------------------------------------

    async def create_session(
        self,
        id: str | None = None,
        *,
        tenant: str = DEFAULT_TENANT,
        user: str | None = None,
        title: str = "",
        mode: SessionMode = "assistant",
        metadata: dict[str, Any] | None = None,
    ) -> SessionInfo:
        id = _name("session id", id if id is not None else uuid.uuid4().hex)
        tenant = _name("tenant", tenant)
        user = None if user is None else _name("user", user)
        now = _now()
        try:
            async with self._transaction() as connection:
                await connection.execute(self._insert_ignore(tenants_t, id=tenant, created_at=now))
                if user is not None:
                    await connection.execute(self._insert_ignore(users_t, tenant_id=tenant, id=user, created_at=now))
                await connection.execute(
                    sessions_t.insert().values(
                        tenant_id=tenant,
                        id=id,
                        user_id=user,
                        title=title,
                        mode=mode,
                        meta=metadata or {},
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            raise SessionExistsError(
                f"Tenant '{tenant}' already has a session '{id}': open it with open_session, or choose another id."
            ) from None
        return await self.get_session(id, tenant=tenant)

    async def get_session(self, id: str, *, tenant: str = DEFAULT_TENANT) -> SessionInfo:
        async with self._transaction() as connection:
            return _session_info(await self._session_row(connection, id, tenant))

    async def list_sessions(
        self, *, tenant: str = DEFAULT_TENANT, user: str | None = None, limit: int = 100
    ) -> list[SessionInfo]:
        async with self._transaction() as connection:
            await self._check_owner(connection, tenant, user)
            query = sa.select(sessions_t).where(sessions_t.c.tenant_id == tenant)
            if user is not None:
                query = query.where(sessions_t.c.user_id == user)
            query = query.order_by(sessions_t.c.updated_at.desc(), sessions_t.c.key.desc()).limit(limit)
            return [_session_info(row) for row in await connection.execute(query)]

    async def _check_owner(self, connection: AsyncConnection, tenant: str, user: str | None) -> None:
        """UnknownTenantError / UnknownUserError when the store has never seen them."""
        if (await connection.execute(sa.select(tenants_t.c.id).where(tenants_t.c.id == tenant))).first() is None:
            raise UnknownTenantError(
                f"There is no tenant '{tenant}' in {self.database}: no session was ever stored for it. "
                "Check the tenant's name; create_session creates a tenant with its first session."
            )
        if user is not None:
            found = await connection.execute(
                sa.select(users_t.c.id).where(users_t.c.tenant_id == tenant, users_t.c.id == user)
            )
            if found.first() is None:
                raise UnknownUserError(
                    f"There is no user '{user}' in tenant '{tenant}' in {self.database}: no session was ever "
                    "stored for them. Check the user id; create_session(user=...) creates a user with their first session."
                )

    async def update_session(
        self,
        id: str,
        *,
        tenant: str = DEFAULT_TENANT,
        title: str | None = None,
        mode: SessionMode | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> SessionInfo:
        changes: dict[str, Any] = {"updated_at": _now()}
        if title is not None:
            changes["title"] = title
        if mode is not None:
            changes["mode"] = mode
        if metadata is not None:
            changes["meta"] = metadata
        async with self._transaction() as connection:
            row = await self._session_row(connection, id, tenant)
            await connection.execute(sessions_t.update().where(sessions_t.c.key == row.key).values(**changes))
        return await self.get_session(id, tenant=tenant)

    async def delete_session(self, id: str, *, tenant: str = DEFAULT_TENANT) -> None:
        async with self._transaction() as connection:
            row = await self._session_row(connection, id, tenant)
            await connection.execute(sessions_t.delete().where(sessions_t.c.key == row.key))

    async def delete_user(self, user: str, *, tenant: str = DEFAULT_TENANT) -> int:
        async with self._transaction() as connection:
            await self._check_owner(connection, tenant, user)
            gone = await connection.execute(
                sessions_t.delete().where(sessions_t.c.tenant_id == tenant, sessions_t.c.user_id == user)
            )
            await connection.execute(users_t.delete().where(users_t.c.tenant_id == tenant, users_t.c.id == user))
            return gone.rowcount

    # --- reading ----------------------------------------------------------------------

    async def messages(
        self, session: str, *, tenant: str = DEFAULT_TENANT, include_unanswered: bool = True
    ) -> list[StoredMessage]:
        query = (
            sa.select(messages_t, turns_t.c.number.label("turn_number"))
            .join(turns_t, turns_t.c.id == messages_t.c.turn_id)
            .join(sessions_t, sessions_t.c.key == messages_t.c.session_key)
            .where(sessions_t.c.tenant_id == tenant, sessions_t.c.id == session)
            .order_by(turns_t.c.number, messages_t.c.seq)
        )
        if not include_unanswered:
            query = query.where(turns_t.c.status == "answered")
        async with self._transaction() as connection:
            rows = list(await connection.execute(query))
            if not rows:  # one query in the common case; an empty result may mean an unknown session
                await self._session_row(connection, session, tenant)
        return [_stored_message(m) for m in rows]

    async def turns(self, session: str, *, tenant: str = DEFAULT_TENANT) -> list[Turn]:
        async with self._transaction() as connection:
            row = await self._session_row(connection, session, tenant)
            return await self._turns(connection, row, turns_t.c.session_key == row.key)

    async def get_turn(self, turn_id: int) -> Turn:
        async with self._transaction() as connection:
            return await self._turn(connection, turn_id)

    async def _turn(self, connection: AsyncConnection, turn_id: int) -> Turn:
        session = (
            await connection.execute(
                sa.select(sessions_t).join(turns_t, turns_t.c.session_key == sessions_t.c.key).where(turns_t.c.id == turn_id)
            )
        ).first()
        if session is None:
            raise UnknownSessionError(f"There is no turn {turn_id} in {self.database} (or its session was deleted).")
        (turn,) = await self._turns(connection, session, turns_t.c.id == turn_id)
        return turn

    async def _turns(self, connection: AsyncConnection, session: sa.Row[Any], where: sa.ColumnElement[bool]) -> list[Turn]:
        turn_rows = list(await connection.execute(sa.select(turns_t).where(where).order_by(turns_t.c.number)))
        by_turn: dict[int, list[StoredMessage]] = {t.id: [] for t in turn_rows}
        message_rows = await connection.execute(
            sa.select(messages_t, turns_t.c.number.label("turn_number"))
            .join(turns_t, turns_t.c.id == messages_t.c.turn_id)
            .where(where)
            .order_by(messages_t.c.seq)
        )
        for m in message_rows:
            by_turn[m.turn_id].append(_stored_message(m))
        return [_turn(t, session, by_turn[t.id]) for t in turn_rows]

    # --- turns --------------------------------------------------------------------------

    async def begin_turn(
        self, session: str, message: str | UserMessage | Entry, *, tenant: str = DEFAULT_TENANT
    ) -> ActiveTurn:
        entry = as_entry(UserMessage(content=message) if isinstance(message, str) else message)
        if entry.message.role != "user":
            raise ConfigError(f"A turn begins with the user's message, not a '{entry.message.role}' message.")
        async with self._transaction() as connection:
            key = (await self._session_row(connection, session, tenant)).key
        async with translated_errors(self.url):  # a lock takes a connection of its own
            lock = await self.locks.acquire(key, f"Session '{session}' of tenant '{tenant}'")
        try:
            now = _now()
            async with self._transaction() as connection:
                row = await self._session_row(connection, session, tenant)  # it may have been deleted meanwhile
                number = row.turn_count + 1
                turn_id = (
                    await connection.execute(
                        turns_t.insert()
                        .values(session_key=key, number=number, status="unanswered", started_at=now)
                        .returning(turns_t.c.id)
                    )
                ).scalar_one()
                await connection.execute(messages_t.insert(), [_message_row(entry, key, turn_id, row.message_count + 1, now)])
                await connection.execute(
                    sessions_t.update()
                    .where(sessions_t.c.key == key)
                    .values(turn_count=number, message_count=row.message_count + 1, updated_at=now)
                )
            stored = StoredMessage(**entry.model_dump(), seq=row.message_count + 1, turn=number, created_at=now)
            turn = Turn(
                id=turn_id, session=session, tenant=tenant, number=number, status="unanswered",
                user_message=stored, started_at=now,
            )
        except BaseException:
            await lock.release()
            raise
        return ActiveTurn(self, turn, lock)

    async def resume_turn(self, turn_id: int) -> ActiveTurn:
        async with self._transaction() as connection:
            turn = await self._turn(connection, turn_id)
            key = (await self._session_row(connection, turn.session, turn.tenant)).key
        _check_open(turn)
        async with translated_errors(self.url):  # a lock takes a connection of its own
            lock = await self.locks.acquire(key, f"Session '{turn.session}' of tenant '{turn.tenant}'")
        try:
            async with self._transaction() as connection:
                _check_open(await self._turn(connection, turn_id))  # its first run may have finished meanwhile
                await connection.execute(
                    turns_t.update().where(turns_t.c.id == turn_id).values(status="unanswered", error=None)
                )
                turn = await self._turn(connection, turn_id)
        except BaseException:
            await lock.release()
            raise
        return ActiveTurn(self, turn, lock)

    async def finish_turn(
        self, turn: ActiveTurn, messages: Sequence[Message | Entry], record: TurnRecord | None = None
    ) -> Turn:
        _check_active(turn)
        entries = [as_entry(m) for m in messages]
        record = record or TurnRecord()
        try:
            now = _now()
            async with self._transaction() as connection:
                await turn.lock.verify(connection)
                session = await self._session_row(connection, turn.session, turn.tenant)
                first = session.message_count + 1
                if entries:
                    await connection.execute(
                        messages_t.insert(),
                        [_message_row(e, session.key, turn.id, first + i, now) for i, e in enumerate(entries)],
                    )
                await connection.execute(
                    turns_t.update()
                    .where(turns_t.c.id == turn.id)
                    .values(status="answered", finished_at=now, error=None, **_record_columns(record))
                )
                await connection.execute(
                    sessions_t.update()
                    .where(sessions_t.c.key == session.key)
                    .values(message_count=session.message_count + len(entries), updated_at=now)
                )
            answer = [
                StoredMessage(**e.model_dump(), seq=first + i, turn=turn.number, created_at=now)
                for i, e in enumerate(entries)
            ]
            return turn.turn.model_copy(
                update={"status": "answered", "messages": answer, "record": record, "error": None, "finished_at": now}
            )
        finally:
            turn.closed = True
            await turn.lock.release()

    async def fail_turn(self, turn: ActiveTurn, error: str) -> Turn:
        _check_active(turn)
        try:
            async with self._transaction() as connection:
                await turn.lock.verify(connection)
                await connection.execute(
                    turns_t.update()
                    .where(turns_t.c.id == turn.id)
                    .values(status="failed", finished_at=_now(), error=error[:4000])
                )
                return await self._turn(connection, turn.id)
        finally:
            turn.closed = True
            await turn.lock.release()

    async def add_messages(
        self, session: str, messages: Sequence[Message | Entry], *, tenant: str = DEFAULT_TENANT
    ) -> list[StoredMessage]:
        entries = [as_entry(m) for m in messages]
        async with self._transaction() as connection:
            key = (await self._session_row(connection, session, tenant)).key
        async with translated_errors(self.url):  # a lock takes a connection of its own
            lock = await self.locks.acquire(key, f"Session '{session}' of tenant '{tenant}'")
        try:
            now = _now()
            async with self._transaction() as connection:
                await lock.verify(connection)
                row = await self._session_row(connection, session, tenant)
                latest = (
                    await connection.execute(
                        sa.select(turns_t.c.id, turns_t.c.number)
                        .where(turns_t.c.session_key == key)
                        .order_by(turns_t.c.number.desc())
                        .limit(1)
                    )
                ).first()
                if latest is None:
                    raise TurnStateError(
                        f"Session '{session}' of tenant '{tenant}' has no turn yet: messages are added to a "
                        "conversation the user has begun."
                    )
                first = row.message_count + 1
                if entries:
                    await connection.execute(
                        messages_t.insert(),
                        [_message_row(e, key, latest.id, first + i, now) for i, e in enumerate(entries)],
                    )
                await connection.execute(
                    sessions_t.update()
                    .where(sessions_t.c.key == key)
                    .values(message_count=row.message_count + len(entries), updated_at=now)
                )
        finally:
            await lock.release()
        return [
            StoredMessage(**e.model_dump(), seq=first + i, turn=latest.number, created_at=now)
            for i, e in enumerate(entries)
        ]

    # --- running summary -------------------------------------------------------------------

    async def summary(self, session: str, *, tenant: str = DEFAULT_TENANT) -> Summary | None:
        async with self._transaction() as connection:
            key = (await self._session_row(connection, session, tenant)).key
            row = (await connection.execute(sa.select(summaries_t).where(summaries_t.c.session_key == key))).first()
        if row is None:
            return None
        return Summary(text=row.text, through_turn=row.through_turn, tokens=row.tokens, updated_at=_utc(row.updated_at))

    async def save_summary(self, turn: ActiveTurn, summary: Summary) -> None:
        _check_active(turn)
        values = {"text": summary.text, "through_turn": summary.through_turn, "tokens": summary.tokens, "updated_at": _now()}
        async with self._transaction() as connection:
            await turn.lock.verify(connection)
            key = (await self._session_row(connection, turn.session, turn.tenant)).key
            insert = postgresql.insert(summaries_t) if self.postgres else sqlite.insert(summaries_t)
            await connection.execute(
                insert.values(session_key=key, **values).on_conflict_do_update(index_elements=["session_key"], set_=values)
            )

    async def close(self) -> None:
        await self.engine.dispose()


# --- rows <-> models --------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(value: datetime | None) -> datetime | None:
    """SQLite gives timestamps back without their zone; they were written in UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def _name(what: str, value: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > _NAME_MAX:
        raise ConfigError(f"A {what} must be a non-blank string of at most {_NAME_MAX} characters, not {value!r}.")
    return value


def _check_active(turn: ActiveTurn) -> None:
    if turn.closed:
        raise TurnStateError(f"Turn {turn.id} of session '{turn.session}' is already finished or failed.")


def _check_open(turn: Turn) -> None:
    if turn.status == "answered":
        raise TurnAnsweredError(
            f"Turn {turn.id} of session '{turn.session}' is already answered: only unanswered or failed turns are retried."
        )


def _session_info(row: sa.Row[Any]) -> SessionInfo:
    return SessionInfo(
        id=row.id,
        tenant=row.tenant_id,
        user=row.user_id,
        title=row.title,
        mode=row.mode,
        metadata=row.meta,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        turns=row.turn_count,
    )


def _message_row(entry: Entry, session_key: int, turn_id: int, seq: int, now: datetime) -> dict[str, Any]:
    data = entry.message.model_dump(mode="json")
    return {
        "session_key": session_key,
        "turn_id": turn_id,
        "seq": seq,
        "role": data["role"],
        "content": data.get("content"),
        "tool_calls": data.get("tool_calls") or None,
        "tool_call_id": data.get("tool_call_id"),
        "name": data.get("name"),
        "is_error": bool(data.get("is_error", False)),
        "citations": entry.citations or None,
        "tokens": entry.tokens,
        "author": entry.author,
        "created_at": now,
    }


def _stored_message(row: sa.Row[Any]) -> StoredMessage:
    data: dict[str, Any] = {"role": row.role, "content": row.content}
    if row.role == "assistant":
        data["tool_calls"] = row.tool_calls or []
    elif row.role == "tool":
        data.update(tool_call_id=row.tool_call_id, name=row.name, is_error=row.is_error)
    return StoredMessage(
        message=_MESSAGE.validate_python(data),
        citations=row.citations or [],
        tokens=row.tokens,
        author=row.author,
        seq=row.seq,
        turn=row.turn_number,
        created_at=_utc(row.created_at),
    )


def _record_columns(record: TurnRecord) -> dict[str, Any]:
    return {
        "outcome": record.outcome,
        "plan": record.plan,
        "subtasks": record.subtasks,
        "tool_calls": [c.model_dump(mode="json") for c in record.tool_calls],
        "prompt_tokens": record.usage.prompt_tokens,
        "completion_tokens": record.usage.completion_tokens,
        "model_calls": record.model_calls,
        "latency_s": record.latency_s,
    }


def _turn(row: sa.Row[Any], session: sa.Row[Any], stored: list[StoredMessage]) -> Turn:
    record = None
    if row.status == "answered":
        record = TurnRecord(
            outcome=row.outcome or "",
            plan=row.plan,
            subtasks=row.subtasks or [],
            tool_calls=row.tool_calls or [],
            usage={"prompt_tokens": row.prompt_tokens or 0, "completion_tokens": row.completion_tokens or 0},
            model_calls=row.model_calls or 0,
            latency_s=row.latency_s,
        )
    return Turn(
        id=row.id,
        session=session.id,
        tenant=session.tenant_id,
        number=row.number,
        status=row.status,
        user_message=stored[0],
        messages=stored[1:],
        record=record,
        error=row.error,
        started_at=_utc(row.started_at),
        finished_at=_utc(row.finished_at),
    )
