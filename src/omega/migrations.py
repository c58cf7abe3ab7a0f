"""Numbered schema migrations shipped as SQL files, ``<folder>/0001_name.sql``: the brain's
SQLite file and the constellation's databases (``omega.storage``) use the same scheme.

Each database records the numbers it applied in a ``schema_migrations`` table; the
missing ones are applied in order, each with its record. A database that records a
number this Omega does not ship was written by a newer Omega and is refused.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources

from omega.errors import SchemaVersionError, StoreError

__all__ = ["Migration", "check_known", "load_migrations", "migrate_sqlite", "statements"]

_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    name: str
    sql: str


def load_migrations(package: str, *folder: str) -> list[Migration]:
    """The migrations in ``package``'s ``folder``, in order; numbering must run 1, 2, 3…
    without gaps."""
    found: list[Migration] = []
    for entry in resources.files(package).joinpath(*folder).iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.number)
    numbers = [m.number for m in found]
    if numbers != list(range(1, len(found) + 1)):
        where = "/".join((package, *folder))
        raise RuntimeError(f"{where} migrations are not numbered 1..n: {numbers}")
    return found


def check_known(applied: set[int], migrations: Sequence[Migration], where: object = None) -> None:
    """Refuse a database written by a newer Omega; ``where`` names it in the message."""
    newer = applied - {m.number for m in migrations}
    if newer:
        name = f"the database {where}" if where is not None else "the database"
        raise SchemaVersionError(
            f"{name} has schema migration(s) {sorted(newer)} this Omega does not know; "
            "it was written by a newer version"
        )


def statements(script: str) -> Iterator[str]:
    """Split a migration script into statements (sqlite3 runs one per execute)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""
    leftover = [ln for ln in buffer.splitlines() if ln.strip() and not ln.strip().startswith("--")]
    if leftover:
        raise StoreError(f"migration script ends with an incomplete statement: {buffer[:80]!r}")


def migrate_sqlite(c: sqlite3.Connection, migrations: Sequence[Migration], where: object) -> bool:
    """Apply the migrations ``c``'s file has not recorded, inside the caller's transaction;
    False if the file had none (it is new)."""
    c.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    applied = {row[0] for row in c.execute("SELECT version FROM schema_migrations")}
    check_known(applied, migrations, where)
    for m in migrations:
        if m.number in applied:
            continue
        for statement in statements(m.sql):
            c.execute(statement)
        c.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (m.number, m.name, time.time()),
        )
        _log.info("applied migration %04d_%s to %s", m.number, m.name, where)
    return bool(applied)
