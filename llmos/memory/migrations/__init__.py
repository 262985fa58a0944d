"""Alembic migrations of the session store's schema; `llmos.memory.migrate` runs them."""
