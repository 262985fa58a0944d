"""Running summaries of sessions and facts remembered about users.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Written out, not imported from schema.py: a migration is history and must not change with the code.
Timestamp = sa.DateTime(timezone=True)
Name = sa.String(200)


def upgrade() -> None:
    op.create_table(
        "session_summaries",
        sa.Column("session_key", sa.Integer, sa.ForeignKey("sessions.key", ondelete="CASCADE"), primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("through_turn", sa.Integer, nullable=False),
        sa.Column("tokens", sa.Integer, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
    )
    op.create_table(
        "user_facts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", Name, nullable=False),
        sa.Column("user_id", Name, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
        sa.Column("embedder", sa.String(200), nullable=False),
        sa.Column("session_id", Name, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE", name="fk_user_facts_user"
        ),
    )
    op.create_index("ix_user_facts_tenant_user", "user_facts", ["tenant_id", "user_id"])


def downgrade() -> None:
    op.drop_index("ix_user_facts_tenant_user", table_name="user_facts")
    op.drop_table("user_facts")
    op.drop_table("session_summaries")
