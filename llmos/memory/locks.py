"""One turn at a time per session, across processes.

PostgreSQL: a session-level advisory lock keyed on the session, held by one connection for
the whole run. The server drops it when that connection ends, so a crashed process never
leaves a session locked.

SQLite (no advisory locks): a lease row in `session_locks`, renewed while the run lasts.
Another process may take it over once it has expired, or at once when its holder was a
process of this machine that no longer exists (a crash). A holder whose lease was taken
over cannot commit its answer: `verify` fails inside the answer's transaction.

A second message for a busy session polls until the lock is free or the timeout passes
(`wait`), or is refused at once (`refuse`), with SessionBusyError either way.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import uuid
from abc import ABC, abstractmethod
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from llmos.errors import SessionBusyError, TurnStateError
from llmos.memory.schema import session_locks

OnBusy = Literal["wait", "refuse"]

# Advisory locks take (namespace, key): the namespace keeps llmos's locks apart from an application's own.
_PG_NAMESPACE = 0x6C6C6D6F  # "llmo"
_HOST = socket.gethostname()


class HeldLock(ABC):
    """A session's lock while a turn runs."""

    @abstractmethod
    async def verify(self, connection: AsyncConnection) -> None:
        """Raise TurnStateError unless the lock is still held; called inside the answer's transaction."""

    @abstractmethod
    async def release(self) -> None:
        """Let the next turn in. Never raises: a lock that cannot be released expires or dies with its connection."""


class SessionLocks(ABC):
    """Takes a session's lock, waiting or refusing when it is busy."""

    def __init__(self, engine: AsyncEngine, *, on_busy: OnBusy, timeout_s: float) -> None:
        self.engine = engine
        self.on_busy = on_busy
        self.timeout_s = timeout_s

    async def acquire(self, key: int, label: str) -> HeldLock:
        """The lock of session `key` (its name in `label`, for messages)."""
        deadline = time.monotonic() + self.timeout_s
        delay = 0.005
        while True:
            held = await self._try(key)
            if held is not None:
                return held
            left = deadline - time.monotonic()
            if self.on_busy == "refuse" or left <= 0:
                break
            # Jittered backoff: waiters of one session do not all retry at the same instant.
            await asyncio.sleep(min(left, delay * (0.5 + random.random())))
            delay = min(delay * 2, 0.1)
        waited = "" if self.on_busy == "refuse" else f" after waiting {self.timeout_s:g} s"
        raise SessionBusyError(
            f"{label} is answering another message{waited}; turns of one session never interleave. "
            "Send the message again when that turn has finished, or configure the store to wait "
            "(on_busy='wait', LLMOS_MEMORY_ON_BUSY=wait) or to wait longer (LLMOS_MEMORY_LOCK_TIMEOUT)."
        )

    @abstractmethod
    async def _try(self, key: int) -> HeldLock | None:
        """The lock if it is free now, else None."""


# --- PostgreSQL: advisory locks ------------------------------------------------------


class AdvisoryLocks(SessionLocks):
    async def _try(self, key: int) -> HeldLock | None:
        connection = await self.engine.connect()
        try:
            got = (
                await connection.execute(
                    sa.text("SELECT pg_try_advisory_lock(:ns, :key), pg_backend_pid()"),
                    {"ns": _PG_NAMESPACE, "key": _int4(key)},
                )
            ).one()
            await connection.commit()  # the lock is the session's, not the transaction's: no idle transaction
        except BaseException:
            await connection.close()
            raise
        if not got[0]:
            await connection.close()
            return None
        return _AdvisoryLock(connection, _int4(key), got[1])


class _AdvisoryLock(HeldLock):
    def __init__(self, connection: AsyncConnection, key: int, backend_pid: int) -> None:
        self.connection = connection
        self.key = key
        self.backend_pid = backend_pid

    async def verify(self, connection: AsyncConnection) -> None:
        held = (
            await connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = :ns "
                    "AND objid::bigint = :key AND objsubid = 2 AND pid = :pid AND granted"
                ),
                {"ns": _PG_NAMESPACE, "key": self.key, "pid": self.backend_pid},
            )
        ).scalar_one()
        if not held:
            raise TurnStateError(
                "The turn lost its session's lock (its database connection ended): its answer is not stored "
                "and the turn stays unanswered. Retry it with resume_turn."
            )

    async def release(self) -> None:
        try:
            await self.connection.execute(
                sa.text("SELECT pg_advisory_unlock(:ns, :key)"), {"ns": _PG_NAMESPACE, "key": self.key}
            )
            await self.connection.commit()
            await self.connection.close()
        except Exception:  # noqa: BLE001 - a broken connection: discarding it ends the lock on the server
            await self.connection.invalidate()
            await self.connection.close()


def _int4(key: int) -> int:
    """Advisory lock keys are 32-bit integers; session keys beyond 2**31 wrap (a collision only serialises)."""
    return key % 2**31


# --- SQLite: a lease row ----------------------------------------------------------


class LeaseLocks(SessionLocks):
    def __init__(self, engine: AsyncEngine, *, on_busy: OnBusy, timeout_s: float, lease_s: float = 60.0) -> None:
        super().__init__(engine, on_busy=on_busy, timeout_s=timeout_s)
        self.lease_s = lease_s

    async def _try(self, key: int) -> HeldLock | None:
        owner = uuid.uuid4().hex
        now = time.time()
        async with self.engine.begin() as connection:
            row = (
                await connection.execute(
                    sa.select(session_locks.c.host, session_locks.c.pid, session_locks.c.expires_at).where(
                        session_locks.c.session_key == key
                    )
                )
            ).first()
            if row is not None and row.expires_at > now and not _dead(row.host, row.pid):
                return None
            values = {"owner": owner, "host": _HOST, "pid": os.getpid(), "expires_at": now + self.lease_s}
            if row is None:
                await connection.execute(session_locks.insert().values(session_key=key, **values))
            else:
                await connection.execute(session_locks.update().where(session_locks.c.session_key == key).values(**values))
        return _Lease(self, key, owner)


class _Lease(HeldLock):
    def __init__(self, locks: LeaseLocks, key: int, owner: str) -> None:
        self.locks = locks
        self.key = key
        self.owner = owner
        # Renewed while the run lasts, so that a long run keeps its session.
        self._renewer = asyncio.get_running_loop().create_task(self._renew())

    def _mine(self) -> sa.ColumnElement[bool]:
        return sa.and_(session_locks.c.session_key == self.key, session_locks.c.owner == self.owner)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.locks.lease_s / 3)
            try:
                async with self.locks.engine.begin() as connection:
                    result = await connection.execute(
                        session_locks.update().where(self._mine()).values(expires_at=time.time() + self.locks.lease_s)
                    )
                if result.rowcount == 0:
                    return  # taken over: verify() will refuse the answer
            except Exception:  # noqa: BLE001 - a busy database: try again at the next beat
                continue

    async def verify(self, connection: AsyncConnection) -> None:
        owner = (
            await connection.execute(sa.select(session_locks.c.owner).where(session_locks.c.session_key == self.key))
        ).scalar()
        if owner != self.owner:
            raise TurnStateError(
                "The turn's lease on its session expired and another turn took the session over: its answer is not "
                "stored and the turn stays unanswered. Retry it with resume_turn, or give runs a longer lease."
            )

    async def release(self) -> None:
        self._renewer.cancel()
        try:
            async with self.locks.engine.begin() as connection:
                await connection.execute(session_locks.delete().where(self._mine()))
        except Exception:  # noqa: BLE001 - the lease expires by itself
            pass


def _dead(host: str, pid: int) -> bool:
    """True when the lease's holder was a process of this machine that no longer exists."""
    if host != _HOST or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, as another user's process
        return False
    return False
