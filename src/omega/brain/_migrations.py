"""The brain's schema: numbered SQL files in ``migrations/`` (the scheme is
:mod:`omega.migrations`, shared with the constellation's storage)."""

from __future__ import annotations

import sqlite3
from functools import cache

from omega.errors import CorruptStoreError
from omega.migrations import Migration, load_migrations, migrate_sqlite

__all__ = ["apply_migrations", "migrations"]


@cache
def migrations() -> tuple[Migration, ...]:
    return tuple(load_migrations("omega.brain", "migrations"))


def apply_migrations(conn: sqlite3.Connection, path: str) -> int:
    """Bring the database up to the newest schema in one transaction; return the version
    now in force. A file from a newer Omega is refused (``SchemaVersionError``)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            migrate_sqlite(conn, migrations(), path)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise CorruptStoreError(f"{path} is not a readable brain database: {exc}") from exc
    return migrations()[-1].number
