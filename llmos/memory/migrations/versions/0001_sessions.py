"""Sessions: tenants, users, sessions, turns, messages in order, and the session lease.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Written out, not imported from schema.py: a migration is history and must not change with the code.
Json = sa.JSON().with_variant(JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)
Name = sa.String(200)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", Name, primary_key=True),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("tenant_id", Name, sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("id", Name, primary_key=True),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("key", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", Name, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("id", Name, nullable=False),
        sa.Column("user_id", Name, nullable=True),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("mode", sa.String(16), nullable=False, server_default="assistant"),
        sa.Column("meta", Json, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("turn_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("message_count", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_sessions_tenant_id"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE", name="fk_sessions_user"
        ),
    )
    op.create_index("ix_sessions_tenant_user", "sessions", ["tenant_id", "user_id"])
    op.create_table(
        "turns",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_key", sa.Integer, sa.ForeignKey("sessions.key", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
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
    op.create_table(
        "messages",
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
        sa.UniqueConstraint("session_key", "seq", name="uq_messages_session_seq"),
    )
    op.create_index("ix_messages_turn", "messages", ["turn_id"])
    op.create_table(
        "session_locks",
        sa.Column("session_key", sa.Integer, sa.ForeignKey("sessions.key", ondelete="CASCADE"), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("session_locks", "messages", "turns", "sessions", "users", "tenants"):
        op.drop_table(table)
