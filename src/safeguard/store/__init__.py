"""Database: models, sessions and migrations (SQLite by default, PostgreSQL via SAFEGUARD_DATABASE_URL)."""

from safeguard.store.db import Database

__all__ = ["Database"]
