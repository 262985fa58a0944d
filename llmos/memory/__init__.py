"""Memory: conversations that survive restarts.

`SessionStore` is the interface; `SQLSessionStore` keeps sessions in SQLite (default, a file
under LLMOS_HOME) or PostgreSQL (LLMOS_MEMORY_URL=postgresql+psycopg://..., for several
processes). A turn's user message is committed before its run starts, its answer in one
transaction when the run ends, and two turns of one session never interleave.
"""

from llmos.memory.models import (
    DEFAULT_TENANT,
    Entry,
    SessionInfo,
    SessionMode,
    StoredMessage,
    Turn,
    TurnRecord,
    TurnStatus,
)
from llmos.memory.sql import SQLSessionStore
from llmos.memory.store import ActiveTurn, SessionStore

__all__ = [
    "DEFAULT_TENANT",
    "ActiveTurn",
    "Entry",
    "SQLSessionStore",
    "SessionInfo",
    "SessionMode",
    "SessionStore",
    "StoredMessage",
    "Turn",
    "TurnRecord",
    "TurnStatus",
]
