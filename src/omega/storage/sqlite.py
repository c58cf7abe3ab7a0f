"""SQLite backend: the embedded default, no server software: one file, plus the live
set's own file beside it (``<name>.live.db``, written only by rounds; see
``_sqlite_live``).

Threading: any thread may call any method. Reads use one connection per thread, each
read one deferred transaction (one snapshot); WAL lets them run while a write is in
progress. Writes go to one writer thread per store, which runs the writes waiting in its
queue in one ``BEGIN IMMEDIATE`` transaction, each in its own savepoint (group commit, see
``_sqlite_writer``); other processes on the same file wait up to ``busy_timeout_ms`` for
the write lock. ``synchronous=FULL`` by default: an acknowledged push must survive power
loss, because the device then drops it from its outbox; group commit keeps that
affordable (one fsync per group, not per push).

The SQL both backends share runs through ``SQLiteEngine`` (``_sqlite_engine``); this
class adds what only SQLite does: two files to migrate, the fold into the live file, and
deletes in short transactions.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from omega.migrations import migrate_sqlite
from omega.storage._migrations import check_known, load_migrations
from omega.storage._release import check_limit
from omega.storage._sql import Tx
from omega.storage._sql_storage import SQLStorage
from omega.storage._sqlite_engine import SQLiteEngine

__all__ = ["SQLiteStorage"]

_log = logging.getLogger(__name__)

#: Folded rows deleted from the queue per transaction (~2 ms of the main file's lock),
#: and the gap left after each for other processes' writers.
_DROP_CHUNK = 1_000
_DROP_GAP_S = 0.003


class SQLiteStorage(SQLStorage[SQLiteEngine]):
    """The constellation's state in one SQLite file (created, with its folder, if missing)."""

    inline_reads = True  # local-file reads in WAL mode: short, and never wait for a writer

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = 10_000,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
    ) -> None:
        super().__init__(
            SQLiteEngine(path, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
        )
        self.path: Path = self._db.path

    def close(self) -> None:
        self._db.close()

    # -- lifecycle ---------------------------------------------------------------------------
    def migrate(self) -> None:
        migrations = load_migrations("sqlite")
        with self._db.read() as tx:  # the main file first: damaged, or from a newer Omega?
            if tx.row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            ):
                applied = {r[0] for r in tx.rows("SELECT version FROM schema_migrations")}
                check_known(applied, migrations, self.path)
        # Then the live file: it takes over the rows of the main file's old live table,
        # which the main file's migration 0004 then drops.
        self._db.live.migrate()
        self._db.write_raw(lambda c: migrate_sqlite(c, migrations, self.path))
        self._db.live.check()

    # -- federation ----------------------------------------------------------------------------
    def apply_pending(self, *, worker_id: str, limit: int, now: float) -> int:
        check_limit(limit)
        applied, through = self._db.live.fold(limit=limit, now=now)  # see _sqlite_live
        if through and (applied or self._queued_through(through)):
            self._drop_folded(through)
        _log.debug("worker %s applied %d contributions", worker_id, applied)
        return applied

    def prune_batches(self, *, created_before: float) -> int:
        return self._delete_in_chunks(
            lambda tx: tx.run(
                "DELETE FROM push_batches WHERE rowid IN (SELECT rowid FROM push_batches"
                " WHERE created_at < ? LIMIT ?)",
                (created_before, _DROP_CHUNK),
            )
        )

    def _delete_in_chunks(self, job: Callable[[Tx], int]) -> int:
        """Run ``job`` (deleting at most ``_DROP_CHUNK`` rows, returning how many) until it
        deletes fewer, with gaps: each transaction holds the lock pushes need, and a writer
        waiting in SQLite's busy handler retries after 1, 2, 5… ms. Returns the total."""
        total = 0
        while (n := self._db.write(job)) == _DROP_CHUNK:
            total += n
            time.sleep(_DROP_GAP_S)
        return total + n

    def _drop_folded(self, through: int) -> None:
        """Delete the queue's rows up to ``through`` (folded), also any a crash left after
        an earlier fold."""

        def drop(tx: Tx) -> int:
            deleted = tx.run(
                "DELETE FROM pending WHERE seq IN"
                " (SELECT seq FROM pending WHERE seq <= ? ORDER BY seq LIMIT ?)",
                (through, _DROP_CHUNK),
            )
            tx.run(
                "UPDATE queue_state SET deleted_through = max(deleted_through, ?) WHERE id = 1",
                (through,),
            )
            return deleted

        self._delete_in_chunks(drop)

    def _queued_through(self, seq: int) -> bool:
        with self._db.read() as tx:
            return tx.row("SELECT 1 FROM pending WHERE seq <= ? LIMIT 1", (seq,)) is not None
