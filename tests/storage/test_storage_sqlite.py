"""What only the SQLite backend promises: WAL on the file, foreign keys, durable commits."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from omega.storage import SQLiteStorage, open_storage


def test_sqlite_file_is_in_wal_mode(tmp_path: Path) -> None:
    store = open_storage(str(tmp_path / "omega.db"))
    try:
        store.stats()
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "omega.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_sqlite_connections_enforce_foreign_keys_and_durability(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "omega.db")
    try:
        store.migrate()
        conn = store._conn()  # the calling thread's connection
        assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (10_000,)
    finally:
        store.close()
