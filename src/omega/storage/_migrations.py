"""Numbered schema migrations, one SQL file each: ``migrations/<backend>/0001_name.sql``.

Each backend records the numbers it applied in a ``schema_migrations`` table and applies
the missing ones in order, each in the same transaction as its record. A database that
records a number this Omega does not ship was written by a newer Omega.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from omega.errors import SchemaVersionError

__all__ = ["Migration", "check_known", "load_migrations"]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    name: str
    sql: str


def load_migrations(backend: Literal["sqlite", "sqlite_live", "postgres"]) -> list[Migration]:
    """The backend's migrations in order; numbering must run 1, 2, 3… without gaps."""
    folder = resources.files("omega.storage").joinpath("migrations", backend)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.number)
    numbers = [m.number for m in found]
    if numbers != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{backend} migrations are not numbered 1..n: {numbers}")
    return found


def check_known(applied: set[int], migrations: list[Migration], where: object = None) -> None:
    """Refuse a database written by a newer Omega; ``where`` names it in the message."""
    newer = applied - {m.number for m in migrations}
    if newer:
        name = f"the database {where}" if where is not None else "the database"
        raise SchemaVersionError(
            f"{name} has schema migration(s) {sorted(newer)} this Omega does not know; "
            "it was written by a newer version"
        )
