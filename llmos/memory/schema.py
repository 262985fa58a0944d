"""The session store's tables (SQLAlchemy Core). The migrations in `migrations/versions` create them;
tests check that migrating an empty database gives exactly these tables.

Sessions are named by the caller (`llmos chat --session support-42`), unique within a tenant;
inside the database a session is its integer `key`, which messages and turns refer to and
which the PostgreSQL advisory lock of the session is keyed on.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

# JSON in SQLite, JSONB in PostgreSQL.
Json = sa.JSON().with_variant(JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)
Name = sa.String(200)

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", Name, primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("tenant_id", Name, sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("id", Name, primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("key", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", Name, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    sa.Column("id", Name, nullable=False),
    sa.Column("user_id", Name, nullable=True),
    sa.Column("title", sa.Text, nullable=False, server_default=""),
    sa.Column("mode", sa.String(16), nullable=False, server_default="assistant"),
    sa.Column("meta", Json, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    # Counters kept under the session's lock: the next turn number and message seq without a max() query.
    sa.Column("turn_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("message_count", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("tenant_id", "id", name="uq_sessions_tenant_id"),
    # A session's user is optional; when set, deleting the user deletes the session.
    sa.ForeignKeyConstraint(
        ["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE", name="fk_sessions_user"
    ),
    sa.Index("ix_sessions_tenant_user", "tenant_id", "user_id"),
)

turns = sa.Table(
    "turns",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session_key", sa.Integer, sa.ForeignKey("sessions.key", ondelete="CASCADE"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # unanswered | answered | failed
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("finished_at", Timestamp, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    # The run's record (TurnRecord), written with the answer in one transaction.
    sa.Column("outcome", sa.Text, nullable=True),
    sa.Column("plan", Json, nullable=True),
    sa.Column("subtasks", Json, nullable=True),
    sa.Column("tool_calls", Json, nullable=True),
    sa.Column("prompt_tokens", sa.Integer, nullable=True),
    sa.Column("completion_tokens", sa.Integer, nullable=True),
    sa.Column("model_calls", sa.Integer, nullable=True),
    sa.Column("latency_s", sa.Float, nullable=True),
    sa.UniqueConstraint("session_key", "number", name="uq_turns_session_number"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session_key", sa.Integer, sa.ForeignKey("sessions.key", ondelete="CASCADE"), nullable=False),
    sa.Column("turn_id", sa.Integer, sa.ForeignKey("turns.id", ondelete="CASCADE"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("content", sa.Text, nullable=True),
    sa.Column("tool_calls", Json, nullable=True),
    sa.Column("tool_call_id", sa.String(200), nullable=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("is_error", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("citations", Json, nullable=True),
    sa.Column("tokens", sa.Integer, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("author", sa.String(200), nullable=True),  # a person who wrote it (hand-off); None: the model or the user
    sa.UniqueConstraint("session_key", "seq", name="uq_messages_session_seq"),
    sa.Index("ix_messages_turn", "turn_id"),
)

# The lease that keeps two turns of a session apart where the database has no advisory locks (SQLite).
session_locks = sa.Table(
    "session_locks",
    metadata,
    sa.Column("session_key", sa.Integer, sa.ForeignKey("sessions.key", ondelete="CASCADE"), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),  # epoch seconds
)

# The running summary of a session's older turns (llmos.memory.context): one row per session,
# rewritten (from the previous text plus the turns folded) when more turns are folded into it.
session_summaries = sa.Table(
    "session_summaries",
    metadata,
    sa.Column("session_key", sa.Integer, sa.ForeignKey("sessions.key", ondelete="CASCADE"), primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("through_turn", sa.Integer, nullable=False),  # turns 1..through_turn are folded into it
    sa.Column("tokens", sa.Integer, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

# What the assistant remembers about a user (llmos.memory.facts), with the fact's embedding.
user_facts = sa.Table(
    "user_facts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", Name, nullable=False),
    sa.Column("user_id", Name, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("embedding", sa.LargeBinary, nullable=False),  # float32, L2-normalised
    sa.Column("embedder", sa.String(200), nullable=False),  # which model wrote the embedding
    sa.Column("session_id", Name, nullable=True),  # where it was learnt, when from a conversation
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    # Deleting the user deletes what is remembered about them.
    sa.ForeignKeyConstraint(
        ["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE", name="fk_user_facts_user"
    ),
    sa.Index("ix_user_facts_tenant_user", "tenant_id", "user_id"),
)
