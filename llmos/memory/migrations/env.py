"""Alembic's entry point. The store passes an open connection (already in a transaction that
holds the migration lock): migrations run on it and commit with it."""

from alembic import context

from llmos.memory.migrate import VERSION_TABLE
from llmos.memory.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite cannot ALTER most things: later migrations copy the table instead
)
with context.begin_transaction():
    context.run_migrations()
