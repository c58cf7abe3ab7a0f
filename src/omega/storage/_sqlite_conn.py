"""The SQLite backend's connection concerns: driver errors as Omega's, WAL set up under
concurrent starts, numbered migrations applied to a file."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from omega.errors import CorruptStoreError, StoreError

_log = logging.getLogger(__name__)

__all__ = ["set_wal", "translated"]


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
