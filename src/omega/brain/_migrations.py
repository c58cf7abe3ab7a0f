"""Numbered schema migrations for the brain's SQLite file: ``migrations/0001_name.sql``.

The applied numbers are recorded in ``schema_migrations``; the missing ones are applied
in order, each in the same transaction as its record (as ``omega.storage`` does for the
constellation's databases). A file that records a number this Omega does not ship was
written by a newer Omega and is refused.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from functools import cache
from importlib import resources

from omega.errors import CorruptStoreError, SchemaVersionError

__all__ = ["Migration", "apply_migrations", "migrations", "schema_version"]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    name: str
    sql: str


@cache
def migrations() -> tuple[Migration, ...]:
    """The shipped migrations in order; numbering must run 1, 2, 3… without gaps."""
    folder = resources.files("omega.brain").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.number)
    numbers = [m.number for m in found]
    if numbers != list(range(1, len(found) + 1)):
        raise RuntimeError(f"brain migrations are not numbered 1..n: {numbers}")
    return tuple(found)


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
    ).fetchone()
    if row is None:
        return 0
    found = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
    return int(found or 0)


def apply_migrations(conn: sqlite3.Connection, path: str) -> int:
    """Bring the database up to the newest schema; return the version now in force."""
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        current = schema_version(conn)
    except sqlite3.DatabaseError as exc:
        raise CorruptStoreError(f"{path} is not a readable brain database: {exc}") from exc
    shipped = migrations()
    newest = shipped[-1].number
    if current > newest:
        raise SchemaVersionError(
            f"{path} has schema version {current}, newer than this Omega understands "
            f"({newest}); upgrade Omega to open it"
        )
    for migration in shipped[current:]:
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            # One statement per call: executescript would commit the open transaction.
            for statement in filter(str.strip, migration.sql.split(";")):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.number, migration.name, time.time()),
            )
    return newest
