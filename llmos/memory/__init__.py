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
    Summary,
    Turn,
    TurnRecord,
    TurnStatus,
)
from llmos.memory.sql import SQLSessionStore
from llmos.memory.store import ActiveTurn, SessionStore
from llmos.memory.context import ContextPolicy, ContextWindow, estimate_tokens
from llmos.memory.facts import Fact, FactChange, Recalled, UserMemory
from llmos.memory.conversation import Memory

__all__ = [
    "DEFAULT_TENANT",
    "ActiveTurn",
    "ContextPolicy",
    "ContextWindow",
    "Fact",
    "FactChange",
    "Memory",
    "Recalled",
    "UserMemory",
    "estimate_tokens",
    "Entry",
    "SQLSessionStore",
    "SessionInfo",
    "SessionMode",
    "SessionStore",
    "StoredMessage",
    "Summary",
    "Turn",
    "TurnRecord",
    "TurnStatus",
]
