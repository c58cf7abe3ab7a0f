"""The brain's SQLite file, ``brain.db``: one connection and the table groups that use it.

Durability: WAL. Each tracked event commits on its own with ``synchronous=NORMAL`` (it
survives a crash of the TV process). Derived state (tiers, patterns) is flushed in
batches with a watermark and rebuilt from later episodes on open. The outbox and sync
cursors commit with ``synchronous=FULL``: they must survive power loss (unless the
brain's files are throwaway: ``BrainConfig.fsync``).

:class:`BrainStore` owns the connection, transactions, the ``meta`` and ``cursors``
key-value tables; each group of tables is a part with one job:

- ``items`` — the catalog and the codebook (``_store_catalog``);
- ``episodes`` — what was tracked (``_store_learning``);
- ``learned`` — patterns, skills and memory tiers (``_store_learning``);
- ``outbox`` — pattern changes waiting to be pushed and the push in flight
  (``_store_sync``);
- ``releases`` — the collective knowledge pulled from the constellation (``_store_sync``);
- ``cowatch`` — the released co-watch table and the pairs contributed (``_store_cowatch``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omega.brain._migrations import apply_migrations
from omega.brain._store_catalog import CatalogTables
from omega.brain._store_cowatch import CowatchTables
from omega.brain._store_learning import EpisodeTable, LearnedTables
from omega.brain._store_sync import OutboxTables, ReleaseTables
from omega.errors import CorruptStoreError, StoreError

__all__ = ["BrainStore"]


class BrainStore:
    """One connection, used under a lock (the brain is one TV's process)."""

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        """``fsync`` False: durable commits do not wait for the disk (``BrainConfig.fsync``)."""
        self.path = path
        self.fsync = fsync
        self.lock = threading.RLock()
        try:
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("PRAGMA busy_timeout=5000")
            # Checkpoints fsync the database file; fewer, larger ones keep tracking fast.
            self.conn.execute("PRAGMA wal_autocheckpoint=4000")
        except sqlite3.DatabaseError as exc:
            raise CorruptStoreError(f"{path} is not a readable brain database: {exc}") from exc
        self.schema_version = apply_migrations(self.conn, str(path))
        self.items = CatalogTables(self)
        self.episodes = EpisodeTable(self)
        self.learned = LearnedTables(self)
        self.outbox = OutboxTables(self)
        self.releases = ReleaseTables(self)
        self.cowatch = CowatchTables(self)

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    @contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT; ``durable`` commits with synchronous=FULL (fsync),
        unless the store was opened without ``fsync``."""
        durable = durable and self.fsync
        with self.lock:
            if durable:
                self.conn.execute("PRAGMA synchronous=FULL")
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
                self.conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"brain database {self.path}: {exc}") from exc
            finally:
                if durable:
                    self.conn.execute("PRAGMA synchronous=NORMAL")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: the reads inside see one state of the file, whatever
        another process writes meanwhile."""
        with self.lock:
            try:
                self.conn.execute("BEGIN")
                try:
                    yield self.conn
                finally:
                    self.conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"brain database {self.path}: {exc}") from exc

    def integrity_ok(self) -> bool:
        with self.lock:
            return bool(self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    # -- meta and cursors ------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self.lock:
            row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def set_meta(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def get_cursor(self, name: str, default: str = "0") -> str:
        with self.lock:
            row = self.conn.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return default if row is None else str(row[0])

    def set_cursor(self, conn: sqlite3.Connection, name: str, value: str) -> None:
        conn.execute(
            "INSERT INTO cursors (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    # -- sizes -------------------------------------------------------------------------
    def count(self, table: str) -> int:
        if not table.isidentifier():
            raise ValueError(f"not a table name: {table!r}")
        with self.lock:
            return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def footprint_bytes(self, *, exclude_catalog: bool) -> int:
        """Bytes the database occupies, optionally without the catalog's vectors."""
        with self.lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            page_size = int(self.conn.execute("PRAGMA page_size").fetchone()[0])
            pages = int(self.conn.execute("PRAGMA page_count").fetchone()[0])
            free = int(self.conn.execute("PRAGMA freelist_count").fetchone()[0])
            total = (pages - free) * page_size
            if exclude_catalog:
                catalog = self.conn.execute(
                    "SELECT COALESCE(SUM(LENGTH(embedding)), 0) FROM items"
                ).fetchone()[0]
                total -= int(catalog)
        return total
