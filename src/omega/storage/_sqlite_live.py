"""The SQLite backend's live set, in a file of its own beside the main one.

A round folds every contribution queued since the last one into the live set: at 500
syncs/s that is ~600,000 rows a minute, ~20 s of write transactions. In the main file
those transactions held the one write lock the server's ingestion needs, and pushes
waited behind them (``omega bench server``: p95 ~340 ms at 500 syncs/s while a round
ran). Only rounds write the live set, so it lives in ``<name>.live<suffix>``: a round
holds that file's lock while it folds, reading the main file's queue through ``ATTACH``
(a WAL read: it never blocks the server), and the main file sees only short deletes of
the queue rows already folded.

Exactly once across two files without a two-file transaction: the live file records how
far into the queue it has folded (``fold_state.applied_seq``) in the same transaction as
the fold, so a crash between the fold and the queue's delete only leaves rows the next
fold skips and deletes. The main file records how far its queue was deleted
(``queue_state.deleted_through``), and both are checked at start-up and at every fold, so
files restored from different times are an error, never contributions skipped unseen: a
live file ahead of every sequence number the main file has issued, or behind what it has
already deleted. A new live file beside a used main file starts after its deletions.

The live file commits with ``synchronous=FULL`` whatever the main file uses: its commit
must be on disk before the main file's delete of the same rows.

``BEGIN IMMEDIATE`` would take the write lock of every attached file, the main one too,
so a write here begins deferred and its first statement claims this file's lock alone.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from omega.errors import StoreError
from omega.migrations import migrate_sqlite
from omega.storage._migrations import load_migrations
from omega.storage._pending import Leased, latest_per_key
from omega.storage._sql_rows import NEWER_WINS
from omega.storage._sqlite_conn import translated
from omega.storage._sqlite_rows import FOLD_PENDING, UPSERT_LIVE, live_values

__all__ = ["LiveFile", "live_path"]

T = TypeVar("T")

_CLAIM = "UPDATE fold_state SET applied_seq = applied_seq WHERE id = 1"

_ADOPT = (
    """INSERT INTO main.live SELECT viewer_id, pattern_id, region, codebook_id, removed, task,
    cells, time_bucket, day_type, success_rate, support, body, seq, updated_at
FROM q.live WHERE true"""
    + NEWER_WINS
)


def live_path(main: Path) -> Path:
    """``data/constellation.db`` → ``data/constellation.live.db`` (beside the real file,
    when the main path is a symbolic link)."""
    main = main.resolve()
    return main.with_name(f"{main.stem}.live{main.suffix}")


class LiveFile:
    """The live set's file; ``write`` jobs see the main file attached as ``q``."""

    def __init__(self, main: Path, connect: Callable[[Path], sqlite3.Connection]) -> None:
        self.main = main
        self.path = live_path(main)
        self._connect = connect
        self._local = threading.local()
        self._lock = threading.Lock()  # guards the connection list
        self._write_lock = threading.Lock()  # one write at a time from this process
        self._writer: sqlite3.Connection | None = None
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        self._fresh = False  # migrate() created this file just now

    def _track(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                conn.close()
                raise StoreError(f"SQLite store {self.main} is closed")
            self._connections.append(conn)
        return conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with translated(self.path):
            conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = self._track(self._connect(self.path))
            conn.execute("BEGIN DEFERRED")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

    def write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job`` in one transaction holding this file's write lock (not the main's)."""
        with translated(self.path), self._write_lock:
            conn = self._writer
            if conn is None:
                conn = self._connect(self.path)
                try:
                    conn.execute("PRAGMA synchronous = FULL")  # see the module docstring
                    conn.execute("ATTACH DATABASE ? AS q", (str(self.main),))
                except BaseException:
                    conn.close()
                    raise
                self._writer = conn = self._track(conn)
            conn.execute("BEGIN")
            try:
                conn.execute(_CLAIM)
                result = job(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

    def migrate(self) -> None:
        """Create or upgrade this file, then take over the rows of a main file's ``live``
        table from before the split (the main file's migration 0004 drops it after)."""
        with translated(self.path):
            conn = self._connect(self.path)
            try:
                conn.execute("BEGIN IMMEDIATE")  # nothing attached on this connection
                try:
                    self._fresh = not migrate_sqlite(
                        conn, load_migrations("sqlite_live"), self.path
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            finally:
                conn.close()

        def adopt(c: sqlite3.Connection) -> None:
            found = c.execute(
                "SELECT 1 FROM q.sqlite_master WHERE type = 'table' AND name = 'live'"
            ).fetchone()
            if found is not None:
                c.execute(_ADOPT)

        self.write(adopt)

    def check(self) -> None:
        """Refuse a live file and a main file from different times (see the module
        docstring); a live file created by this start-up starts after the main file's
        deletions."""

        def job(c: sqlite3.Connection) -> None:
            if self._fresh:
                c.execute(
                    "UPDATE fold_state SET applied_seq ="
                    " (SELECT deleted_through FROM q.queue_state WHERE id = 1) WHERE id = 1"
                )
            self._applied(c)

        self.write(job)
        self._fresh = False

    def fold(self, *, limit: int, now: float) -> tuple[int, int]:
        """Fold the next ``limit`` queued rows: (rows folded, applied_seq after)."""

        def job(c: sqlite3.Connection) -> tuple[int, int]:
            done = self._applied(c)  # this file's write lock is ours: nobody moves it
            count, last = c.execute(
                "SELECT count(*), max(seq) FROM"
                " (SELECT seq FROM q.pending WHERE seq > ? ORDER BY seq LIMIT ?)",
                (done, limit),
            ).fetchone()
            if not count:
                return 0, done
            # One statement folds the batch (newest per key wins by seq); only rows queued
            # before migration 0002, without the structured columns, need decoding here.
            c.execute(FOLD_PENDING, (now, done, last))
            legacy = [
                Leased(*row)
                for row in c.execute(
                    "SELECT seq, viewer_id, region, codebook_id, pattern_id, op, body"
                    " FROM q.pending WHERE seq > ? AND seq <= ? AND op = 'upsert'"
                    " AND task IS NULL",
                    (done, last),
                )
            ]
            if legacy:
                c.executemany(UPSERT_LIVE, [live_values(r, now) for r in latest_per_key(legacy)])
            c.execute("UPDATE fold_state SET applied_seq = ? WHERE id = 1", (last,))
            return int(count), int(last)

        return self.write(job)

    def _applied(self, c: sqlite3.Connection) -> int:
        (done,) = c.execute("SELECT applied_seq FROM fold_state WHERE id = 1").fetchone()
        (issued,) = c.execute(
            "SELECT coalesce(max(seq), 0) FROM q.sqlite_sequence WHERE name = 'pending'"
        ).fetchone()
        (deleted,) = c.execute("SELECT deleted_through FROM q.queue_state WHERE id = 1").fetchone()
        fix = (
            f"Stop every server and worker on them, then restore both from one backup, or "
            f"move {self.path.name} aside (the live set then holds what devices push from "
            "now on)"
        )
        if issued < done:
            raise StoreError(
                f"{self.path} has folded queued contributions up to #{done}, but {self.main} "
                f"has only ever queued up to #{issued}: the files are from different times. " + fix
            )
        if deleted > done:
            raise StoreError(
                f"{self.main} has deleted queued contributions up to #{deleted} as folded, "
                f"but {self.path} has folded only up to #{done}: the live file is older and "
                "lacks them. " + fix
            )
        return int(done)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        with self._write_lock:
            self._writer = None
        for conn in connections:
            conn.close()
        self._local = threading.local()
