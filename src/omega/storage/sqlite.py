"""SQLite backend: the embedded default, no server software: one file, plus the live
set's own file beside it (``<name>.live.db``, written only by rounds; see
``_sqlite_live``).

Threading: any thread may call any method. Reads use one connection per thread
(``threading.local``), each read one deferred transaction (one snapshot); WAL lets them
run while a write is in progress. Writes go to one writer thread per store, which runs
the writes waiting in its queue in one ``BEGIN IMMEDIATE`` transaction, each in its own
savepoint (group commit, see ``_sqlite_writer``); other processes on the same file wait
up to ``busy_timeout_ms`` for the write lock. ``synchronous=FULL`` by default: an
acknowledged push must survive power loss, because the device then drops it from its
outbox; group commit keeps that affordable (one fsync per group, not per push).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, TypeVar

from omega.errors import ConflictError, InputError, StoreError
from omega.protocol.messages import (
    ConsolidatedPattern,
    ItemScore,
    PushAck,
    PushRequest,
    Trend,
)
from omega.storage._codec import (
    check_codebook,
    decode_ack,
    decode_consolidated,
    decode_pattern,
    encode,
)
from omega.storage._migrations import check_known, load_migrations
from omega.storage._pending import pending_rows
from omega.storage._release import check_limit, delta_cut, stamp_release
from omega.storage._sqlite_conn import migrate_file, set_wal, translated
from omega.storage._sqlite_live import LiveFile
from omega.storage._sqlite_popularity import (
    SQLitePopularity,
    insert_reports,
    insert_shares,
    popular_between,
    upsert_popular,
)
from omega.storage._sqlite_rows import (
    UPSERT_RELEASED,
    columns,
    pending_columns,
)
from omega.storage._sqlite_writer import Writer, WriterClosedError
from omega.storage.base import (
    Codebook,
    LivePattern,
    ReleaseDelta,
    Storage,
    StorageStats,
    ViewerRecord,
)

__all__ = ["SQLiteStorage"]

_log = logging.getLogger(__name__)

T = TypeVar("T")

#: Folded rows deleted from the queue per transaction (~2 ms of the main file's lock),
#: and the gap left after each for other processes' writers.
_DROP_CHUNK = 1_000
_DROP_GAP_S = 0.003


class SQLiteStorage(SQLitePopularity, Storage):
    """The constellation's state in one SQLite file (created, with its folder, if missing)."""

    inline_reads = True  # local-file reads in WAL mode: short, and never wait for a writer

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = 10_000,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
    ) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._synchronous = synchronous
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        self._writer = Writer(self._connect, name=f"omega-sqlite-writer:{self.path.name}")
        self._live = LiveFile(self.path, self._connect)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder for {self.path}: {exc}") from exc

    # -- connections and transactions ---------------------------------------------------
    def _connect(self, path: Path | None = None) -> sqlite3.Connection:
        conn = sqlite3.connect(
            path or self.path,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # only so close() may close it from another thread
            timeout=self._busy_timeout_ms / 1000,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            set_wal(conn, self._busy_timeout_ms / 1000)
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()  # never hand out a connection without its pragmas
            raise
        return conn

    def _conn(self) -> sqlite3.Connection:
        """The calling thread's read connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise StoreError(f"SQLite store {self.path} is closed")
        conn = self._connect()
        with self._lock:
            self._connections.append(conn)
        self._local.conn = conn
        return conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with translated(self.path):
            conn = self._conn()
            conn.execute("BEGIN DEFERRED")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")  # read-only: nothing to keep

    def _write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job`` in a write transaction on the writer thread; return once committed."""
        with translated(self.path):
            try:
                return self._writer.run(job)
            except WriterClosedError:
                raise StoreError(f"SQLite store {self.path} is closed") from None

    async def _write_async(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """As :meth:`_write`, awaited on an event loop (no thread waits for the commit)."""
        with translated(self.path):
            try:
                return await self._writer.run_async(job)
            except WriterClosedError:
                raise StoreError(f"SQLite store {self.path} is closed") from None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        self._writer.close()
        self._live.close()
        for conn in connections:
            conn.close()
        self._local = threading.local()

    # -- lifecycle ---------------------------------------------------------------------------
    def migrate(self) -> None:
        migrations = load_migrations("sqlite")
        with self._read() as c:  # the main file first: damaged, or from a newer Omega?
            if c.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            ).fetchone():
                applied = {r[0] for r in c.execute("SELECT version FROM schema_migrations")}
                check_known(applied, migrations, self.path)
        # Then the live file: it takes over the rows of the main file's old live table,
        # which the main file's migration 0004 then drops.
        self._live.migrate()
        self._write(lambda c: migrate_file(c, migrations, self.path))
        self._live.check()

    # -- viewers -----------------------------------------------------------------------------
    def create_viewer(self, viewer: ViewerRecord) -> None:
        def write(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO viewers (viewer_id, region, device_model, client_version, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (viewer_id) DO NOTHING",
                (
                    viewer.viewer_id,
                    viewer.region,
                    viewer.device_model,
                    viewer.client_version,
                    viewer.created_at,
                ),
            )
            if c.execute("SELECT changes()").fetchone()[0] == 0:
                stored = _viewer(c, viewer.viewer_id)
                if stored != viewer:
                    raise ConflictError(f"viewer {viewer.viewer_id!r} is already registered")

        self._write(write)

    def get_viewer(self, viewer_id: str) -> ViewerRecord | None:
        with self._read() as c:
            return _viewer(c, viewer_id)

    def use_refresh_token(self, jti: str, viewer_id: str, *, now: float) -> bool:
        def write(c: sqlite3.Connection) -> bool:
            _require_viewer(c, viewer_id)
            cur = c.execute(
                "INSERT INTO refresh_tokens (jti, viewer_id, used_at) VALUES (?, ?, ?)"
                " ON CONFLICT (jti) DO NOTHING",
                (jti, viewer_id, now),
            )
            return cur.rowcount == 1

        return self._write(write)

    # -- content -------------------------------------------------------------------------------
    def put_codebook(self, codebook: Codebook) -> None:
        check_codebook(codebook)
        ids = json.dumps(list(codebook.item_ids)) if codebook.item_ids else None

        def write(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO codebooks (codebook_id, dim, k, centroids_f16, item_ids, put_seq)"
                " VALUES (?, ?, ?, ?, ?, (SELECT coalesce(max(put_seq), 0) + 1 FROM codebooks))"
                " ON CONFLICT (codebook_id) DO UPDATE SET dim = excluded.dim, k = excluded.k,"
                " centroids_f16 = excluded.centroids_f16, item_ids = excluded.item_ids,"
                " put_seq = excluded.put_seq",
                (codebook.codebook_id, codebook.dim, codebook.k, codebook.centroids_f16, ids),
            )

        self._write(write)

    def get_codebook(self) -> Codebook | None:
        with self._read() as c:
            row = c.execute(
                "SELECT codebook_id, dim, centroids_f16, k, item_ids FROM codebooks"
                " ORDER BY put_seq DESC LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        ids = tuple(json.loads(row[4])) if row[4] else ()
        return Codebook(row[0], row[1], bytes(row[2]), row[3], ids)

    # -- ingestion -----------------------------------------------------------------------------
    def ingest(
        self, push: PushRequest, *, digest: str, region: str, ack: PushAck, now: float
    ) -> PushAck:
        return self._write(self._ingest_job(push, digest=digest, region=region, ack=ack, now=now))

    async def ingest_async(
        self, push: PushRequest, *, digest: str, region: str, ack: PushAck, now: float
    ) -> PushAck:
        job = self._ingest_job(push, digest=digest, region=region, ack=ack, now=now)
        return await self._write_async(job)

    def _ingest_job(
        self, push: PushRequest, *, digest: str, region: str, ack: PushAck, now: float
    ) -> Callable[[sqlite3.Connection], PushAck]:
        head = (push.viewer_id, push.batch_id, region, push.codebook_id)
        rows = [
            (*head, r.pattern_id, r.op, r.body, *pending_columns(r.pattern), now)
            for r in pending_rows(push, ack)
        ]

        def write(c: sqlite3.Connection) -> PushAck:
            found = c.execute(
                "SELECT digest, ack FROM push_batches WHERE viewer_id = ? AND batch_id = ?",
                (push.viewer_id, push.batch_id),
            ).fetchone()
            if found is not None:
                if found[0] != digest:
                    raise ConflictError(
                        f"batch {push.batch_id!r} of viewer {push.viewer_id!r} was already "
                        "pushed with a different payload"
                    )
                return decode_ack(found[1])
            _require_viewer(c, push.viewer_id)
            c.execute(
                "INSERT INTO push_batches (viewer_id, batch_id, digest, ack, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (push.viewer_id, push.batch_id, digest, encode(ack), now),
            )
            c.executemany(
                "INSERT INTO pending (viewer_id, batch_id, region, codebook_id, pattern_id, op,"
                " body, task, cells, time_bucket, day_type, success_rate, support, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            insert_reports(c, push.reports, now)
            insert_shares(c, push.shares, now)
            return ack

        return write

    # -- federation ----------------------------------------------------------------------------
    def apply_pending(self, *, worker_id: str, limit: int, now: float) -> int:
        check_limit(limit)
        applied, through = self._live.fold(limit=limit, now=now)  # see _sqlite_live
        if through and (applied or self._queued_through(through)):
            self._drop_folded(through)
        _log.debug("worker %s applied %d contributions", worker_id, applied)
        return applied

    def _delete_in_chunks(self, job: Callable[[sqlite3.Connection], int]) -> int:
        """Run ``job`` (deleting at most ``_DROP_CHUNK`` rows, returning how many) until it
        deletes fewer, with gaps: each transaction holds the lock pushes need, and a writer
        waiting in SQLite's busy handler retries after 1, 2, 5… ms. Returns the total."""
        total = 0
        while (n := self._write(job)) == _DROP_CHUNK:
            total += n
            time.sleep(_DROP_GAP_S)
        return total + n

    def _drop_folded(self, through: int) -> None:
        """Delete the queue's rows up to ``through`` (folded), also any a crash left after
        an earlier fold."""

        def drop(c: sqlite3.Connection) -> int:
            deleted = c.execute(
                "DELETE FROM pending WHERE seq IN"
                " (SELECT seq FROM pending WHERE seq <= ? ORDER BY seq LIMIT ?)",
                (through, _DROP_CHUNK),
            ).rowcount
            c.execute(
                "UPDATE queue_state SET deleted_through = max(deleted_through, ?) WHERE id = 1",
                (through,),
            )
            return int(deleted)

        self._delete_in_chunks(drop)

    def _queued_through(self, seq: int) -> bool:
        with self._read() as c:
            return (
                c.execute("SELECT 1 FROM pending WHERE seq <= ? LIMIT 1", (seq,)).fetchone()
                is not None
            )

    def live_patterns(self, *, codebook_id: str, updated_after: float) -> list[LivePattern]:
        with self._live.read() as c:
            rows = c.execute(
                "SELECT viewer_id, region, codebook_id, body, updated_at FROM live"
                " WHERE removed = 0 AND codebook_id = ? AND updated_at > ?"
                " ORDER BY viewer_id, pattern_id",
                (codebook_id, updated_after),
            ).fetchall()
        return [LivePattern(r[0], r[1], r[2], decode_pattern(r[3]), r[4]) for r in rows]

    def prune_live(self, *, updated_before: float) -> int:
        def write(c: sqlite3.Connection) -> int:
            dropped = c.execute(
                "DELETE FROM live WHERE updated_at < ? RETURNING removed", (updated_before,)
            ).fetchall()
            return sum(1 for (removed,) in dropped if not removed)

        return self._live.write(write)

    def prune_batches(self, *, created_before: float) -> int:
        def write(c: sqlite3.Connection) -> int:
            return int(
                c.execute(
                    "DELETE FROM push_batches WHERE rowid IN (SELECT rowid FROM push_batches"
                    " WHERE created_at < ? LIMIT ?)",
                    (created_before, _DROP_CHUNK),
                ).rowcount
            )

        return self._delete_in_chunks(write)

    def release_version(self) -> int:
        with self._read() as c:
            return _version(c)

    def current_release(self) -> tuple[int, list[ConsolidatedPattern]]:
        with self._read() as c:
            version = _version(c)
            rows = c.execute(
                "SELECT body FROM released WHERE removed = 0 ORDER BY weight DESC, pattern_id"
            ).fetchall()
        return version, [decode_consolidated(r[0]) for r in rows]

    def commit_release(
        self,
        *,
        base_version: int,
        upserted: list[ConsolidatedPattern],
        removed: list[str],
        trends: list[Trend],
        now: float,
        popular: list[ItemScore] | None = None,
    ) -> int | None:
        version = base_version + 1
        patterns, stamped = stamp_release(upserted, removed, trends, version)
        # Encoded before the transaction: it holds the lock every push needs.
        rows = [(p.id, version, p.weight, *columns(p), p.viewers, encode(p)) for p in patterns]

        def write(c: sqlite3.Connection) -> int | None:
            if _version(c) != base_version:
                return None
            c.execute("UPDATE release_state SET version = ? WHERE id = 1", (version,))
            c.executemany(UPSERT_RELEASED, rows)
            dropped = c.executemany(
                "UPDATE released SET removed = 1, version = ?, body = NULL"
                " WHERE pattern_id = ? AND removed = 0",
                [(version, pid) for pid in removed],
            ).rowcount
            c.execute("DELETE FROM trends")
            c.executemany(
                "INSERT INTO trends (position, cell, region, score, version)"
                " VALUES (?, ?, ?, ?, ?)",
                [(i, t.cell, t.region, t.score, t.version) for i, t in enumerate(stamped)],
            )
            c.execute(
                "INSERT INTO releases (version, created_at, upserted, removed) VALUES (?, ?, ?, ?)",
                (version, now, len(patterns), max(dropped, 0)),
            )
            upsert_popular(c, popular or [], version)
            return version

        return self._write(write)

    def release_delta(self, *, since_version: int, limit: int) -> ReleaseDelta:
        check_limit(limit)
        with self._read() as c:
            current = _version(c)
            rows = c.execute(
                "SELECT version, body FROM released WHERE removed = 0 AND version > ?"
                " ORDER BY version, weight DESC, pattern_id LIMIT ?",
                (since_version, limit + 1),
            ).fetchall()
            n, version = delta_cut(
                [r[0] for r in rows], limit=limit, since=since_version, current=current
            )
            removed = [
                r[0]
                for r in c.execute(
                    "SELECT pattern_id FROM released WHERE removed = 1 AND version > ?"
                    " AND version <= ? ORDER BY version, pattern_id",
                    (since_version, version),
                )
            ]
            trends = [
                Trend(cell=r[0], region=r[1], score=r[2], version=r[3])
                for r in c.execute(
                    "SELECT cell, region, score, version FROM trends ORDER BY position"
                )
            ]
            popular = popular_between(c, since_version, version)
        return ReleaseDelta(
            version=version,
            patterns=[decode_consolidated(r[1]) for r in rows[:n]],
            removed=removed,
            trends=trends,
            popular=popular,
        )

    def stats(self) -> StorageStats:
        with self._read() as c:
            viewers, pending, released, version = c.execute(
                "SELECT (SELECT count(*) FROM viewers), (SELECT count(*) FROM pending),"
                " (SELECT count(*) FROM released WHERE removed = 0),"
                " (SELECT version FROM release_state WHERE id = 1)"
            ).fetchone()
        with self._live.read() as c:
            (live,) = c.execute("SELECT count(*) FROM live WHERE removed = 0").fetchone()
        return StorageStats(viewers, pending, live, released, version, backend="sqlite")


def _version(c: sqlite3.Connection) -> int:
    (version,) = c.execute("SELECT version FROM release_state WHERE id = 1").fetchone()
    return int(version)


def _viewer(c: sqlite3.Connection, viewer_id: str) -> ViewerRecord | None:
    row = c.execute(
        "SELECT viewer_id, region, device_model, created_at, client_version FROM viewers"
        " WHERE viewer_id = ?",
        (viewer_id,),
    ).fetchone()
    return None if row is None else ViewerRecord(*row)


def _require_viewer(c: sqlite3.Connection, viewer_id: str) -> None:
    if c.execute("SELECT 1 FROM viewers WHERE viewer_id = ?", (viewer_id,)).fetchone() is None:
        raise InputError(f"viewer {viewer_id!r} is not registered")
