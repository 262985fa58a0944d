"""Schema versions: alembic migrations, run by the store when it opens a database.

Alembic is the field's tool for versioned SQLAlchemy schemas: each change is one numbered
file in `migrations/versions` with an upgrade and a downgrade, and SQLite (which cannot
ALTER most things) gets batch mode for free. The store runs `upgrade` on a connection whose
transaction holds the migration lock, so two processes opening a fresh database at once
migrate it once. The version lives in its own table, so that a database shared with an
application that has its own alembic history keeps both.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from llmos.errors import SchemaError

VERSION_TABLE = "llmos_memory_version"
MIGRATIONS = Path(__file__).parent / "migrations"


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def head() -> str:
    """The newest schema revision this llmos knows."""
    revision = _scripts().get_current_head()
    assert revision is not None
    return revision


def current(connection: Connection) -> str | None:
    """The database's schema revision; None for a database the store never opened."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade(connection: Connection, database: str) -> None:
    """Bring the schema to `head()`; nothing to do when it is there already."""
    revision = current(connection)
    if revision == head():
        return
    known = {script.revision for script in _scripts().walk_revisions()}
    if revision is not None and revision not in known:
        raise SchemaError(
            f"The session database {database} has schema revision '{revision}', newer than this llmos knows "
            f"(newest: '{head()}'). Upgrade llmos, or point LLMOS_MEMORY_URL at another database."
        )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
