"""The SQLite backend's connection concerns: driver errors as Omega's, WAL set up under
concurrent starts, numbered migrations applied to a file."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from omega.errors import CorruptStoreError, StoreError
from omega.storage._migrations import Migration, check_known

_log = logging.getLogger(__name__)

__all__ = ["migrate_file", "set_wal", "statements", "translated"]


@contextmanager
def translated(path: Path) -> Iterator[None]:
    """Turn sqlite3's errors into Omega's, naming the file."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError):
            raise StoreError(f"SQLite store {path}: {text}") from exc
        if "not a database" in text or "malformed" in text:
            raise CorruptStoreError(f"SQLite store {path} is damaged: {text}") from exc
        raise StoreError(f"SQLite store {path}: {text}") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"SQLite store {path}: {exc}") from exc


def _is_locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def set_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch the file to WAL, retrying while other connections lock it.

    SQLite does not always call the busy handler here: servers starting together on a
    fresh file failed 2 test runs in 30 with "database is locked" until this retried.
    """
    for attempt in Retrying(
        retry=retry_if_exception(_is_locked),
        stop=stop_after_delay(timeout_s),
        wait=wait_random_exponential(multiplier=0.005, max=0.1),
        reraise=True,
    ):
        with attempt:
            conn.execute("PRAGMA journal_mode = WAL")


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


def migrate_file(c: sqlite3.Connection, migrations: list[Migration], path: Path) -> bool:
    """Apply the migrations ``c``'s file has not recorded, inside the caller's transaction;
    False if the file had none (it is new)."""
    c.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    applied = {row[0] for row in c.execute("SELECT version FROM schema_migrations")}
    check_known(applied, migrations, path)
    for m in migrations:
        if m.number in applied:
            continue
        for statement in statements(m.sql):
            c.execute(statement)
        c.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (m.number, m.name, time.time()),
        )
        _log.info("applied SQLite migration %04d_%s to %s", m.number, m.name, path)
    return bool(applied)
