"""The session store's interface. `SQLSessionStore` (llmos.memory.sql) implements it on SQLite and PostgreSQL.

A run with a session goes like this:

    turn = await store.begin_turn("support-42", "Where is my order?", tenant="acme")
    # from here the user's message is committed (acknowledged) and the session is locked
    history = await store.history("support-42", tenant="acme", before=turn)
    result = await agent.run(turn.user_message.message.content, history=history)
    await store.finish_turn(turn, result.messages[...], TurnRecord(...))   # one transaction

or, with the lock released and the turn marked failed on an exception:

    async with store.turn("support-42", "Where is my order?", tenant="acme") as turn:
        ...
        await turn.finish(messages, record)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from llmos.llm.messages import Message, UserMessage
from llmos.memory.locks import HeldLock
from llmos.memory.models import (
    DEFAULT_TENANT,
    Entry,
    SessionInfo,
    SessionMode,
    StoredMessage,
    Summary,
    Turn,
    TurnRecord,
)


class ActiveTurn:
    """A turn whose run holds its session's lock. Finish it, or fail it; until then it is `unanswered`."""

    def __init__(self, store: SessionStore, turn: Turn, lock: HeldLock) -> None:
        self.store = store
        self.turn = turn
        self.lock = lock
        self.closed = False

    @property
    def id(self) -> int:
        return self.turn.id

    @property
    def session(self) -> str:
        return self.turn.session

    @property
    def tenant(self) -> str:
        return self.turn.tenant

    @property
    def number(self) -> int:
        return self.turn.number

    @property
    def user_message(self) -> StoredMessage:
        return self.turn.user_message

    async def finish(self, messages: Sequence[Message | Entry], record: TurnRecord | None = None) -> Turn:
        return await self.store.finish_turn(self, messages, record)

    async def fail(self, error: str) -> Turn:
        return await self.store.fail_turn(self, error)

    def __repr__(self) -> str:
        return f"ActiveTurn(id={self.id}, session={self.session!r}, tenant={self.tenant!r}, number={self.number})"


class SessionStore(ABC):
    """Sessions, their messages in order, and one record per turn; one turn at a time per session.

    Sessions are named by the caller and unique within a tenant. Creating a session creates
    its tenant and user; reading an unknown one raises UnknownSessionError, UnknownTenantError
    or UnknownUserError.
    """

    # --- sessions --------------------------------------------------------------------

    @abstractmethod
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
        """A new session (a random id when none is given); SessionExistsError when the id is taken."""

    async def open_session(
        self, id: str, *, tenant: str = DEFAULT_TENANT, user: str | None = None, title: str = ""
    ) -> SessionInfo:
        """The session, created first when it does not exist (`llmos chat --session NAME`)."""
        from llmos.errors import SessionExistsError, UnknownSessionError

        try:
            return await self.get_session(id, tenant=tenant)
        except UnknownSessionError:
            try:
                return await self.create_session(id, tenant=tenant, user=user, title=title)
            except SessionExistsError:  # created meanwhile by another process
                return await self.get_session(id, tenant=tenant)

    @abstractmethod
    async def get_session(self, id: str, *, tenant: str = DEFAULT_TENANT) -> SessionInfo: ...

    @abstractmethod
    async def list_sessions(
        self, *, tenant: str = DEFAULT_TENANT, user: str | None = None, limit: int = 100
    ) -> list[SessionInfo]:
        """The tenant's (or the user's) sessions, most recently updated first."""

    @abstractmethod
    async def update_session(
        self,
        id: str,
        *,
        tenant: str = DEFAULT_TENANT,
        title: str | None = None,
        mode: SessionMode | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> SessionInfo:
        """Change what is given; `metadata` replaces the whole dict."""

    @abstractmethod
    async def delete_session(self, id: str, *, tenant: str = DEFAULT_TENANT) -> None:
        """The session with its messages and turns."""

    @abstractmethod
    async def delete_user(self, user: str, *, tenant: str = DEFAULT_TENANT) -> int:
        """The user and all of their sessions; returns how many sessions went."""

    # --- reading ---------------------------------------------------------------------

    @abstractmethod
    async def messages(
        self, session: str, *, tenant: str = DEFAULT_TENANT, include_unanswered: bool = True
    ) -> list[StoredMessage]:
        """The session's messages, turn by turn, each turn's in commit order.

        include_unanswered=False leaves out the user messages of turns not (yet) answered.
        """

    async def history(
        self, session: str, *, tenant: str = DEFAULT_TENANT, before: ActiveTurn | None = None
    ) -> list[Message]:
        """What to send a model as the conversation so far: the answered turns' messages, in order.

        before: the running turn; turns from it on are left out.
        """
        stored = await self.messages(session, tenant=tenant, include_unanswered=False)
        return [m.message for m in stored if before is None or m.turn < before.number]

    @abstractmethod
    async def turns(self, session: str, *, tenant: str = DEFAULT_TENANT) -> list[Turn]:
        """Every turn of the session in order, with its messages and record."""

    @abstractmethod
    async def get_turn(self, turn_id: int) -> Turn: ...

    # --- turns -------------------------------------------------------------------------

    @abstractmethod
    async def begin_turn(
        self, session: str, message: str | UserMessage | Entry, *, tenant: str = DEFAULT_TENANT
    ) -> ActiveTurn:
        """Lock the session, then commit the user's message as a new `unanswered` turn.

        When this returns, the message is stored (acknowledged) and no other turn of the session
        can begin until this one is finished or failed. SessionBusyError when the session stays busy.
        """

    @abstractmethod
    async def resume_turn(self, turn_id: int) -> ActiveTurn:
        """Lock the session of an `unanswered` or `failed` turn (e.g. left by a crash) to run it again."""

    @abstractmethod
    async def finish_turn(
        self, turn: ActiveTurn, messages: Sequence[Message | Entry], record: TurnRecord | None = None
    ) -> Turn:
        """Commit the answer's messages and the run's record in one transaction, mark the turn
        `answered`, and release the session. TurnStateError when the turn lost its lock."""

    @abstractmethod
    async def fail_turn(self, turn: ActiveTurn, error: str) -> Turn:
        """Mark the turn `failed` (its user message stays, it can be resumed) and release the session."""

    @abstractmethod
    async def add_messages(
        self, session: str, messages: Sequence[Message | Entry], *, tenant: str = DEFAULT_TENANT
    ) -> list[StoredMessage]:
        """Append messages written outside a run (a person's reply in a handed-off session) to the
        session's latest turn, under the session's lock. TurnStateError when the session has no turn yet."""

    @asynccontextmanager
    async def turn(
        self, session: str, message: str | UserMessage | Entry, *, tenant: str = DEFAULT_TENANT
    ) -> AsyncIterator[ActiveTurn]:
        """begin_turn; on leaving, a turn not finished is failed with the exception (or 'not finished')."""
        active = await self.begin_turn(session, message, tenant=tenant)
        try:
            yield active
        except BaseException as exc:
            if not active.closed:
                await self.fail_turn(active, f"{type(exc).__name__}: {exc}")
            raise
        if not active.closed:
            await self.fail_turn(active, "The run ended without finishing the turn.")

    # --- running summary -----------------------------------------------------------------

    @abstractmethod
    async def summary(self, session: str, *, tenant: str = DEFAULT_TENANT) -> Summary | None:
        """The session's running summary; None while no turn has been folded into one."""

    @abstractmethod
    async def save_summary(self, turn: ActiveTurn, summary: Summary) -> None:
        """Replace the session's summary, under the lock of its running turn (TurnStateError if lost)."""

    # --- lifetime ------------------------------------------------------------------------

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> SessionStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
