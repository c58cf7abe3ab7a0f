"""PostgreSQL backend (psycopg 3): the production store, shared by servers and workers.

Threading: one connection per thread (``threading.local``), opened on first use and
reopened if the server dropped it; every method is one explicit transaction on it. A
server process therefore holds up to one connection per threadpool thread.

Several federation workers may share one database: ``apply_pending`` leases rows with
``FOR UPDATE SKIP LOCKED`` (no two workers see the same contribution) and
``commit_release`` is optimistic on the version row (``UPDATE ... WHERE version = base``).

pgvector is a detected capability, not a requirement: ``migrate`` runs
``CREATE EXTENSION IF NOT EXISTS vector`` and, if that works, keeps each 384-dim
codebook's centroids in ``codebook_vectors.centroid vector(384)`` as well as in the f16
bytes every reader uses. ``stats().capabilities`` says which case holds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg

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
from omega.storage._postgres_popularity import (
    PostgresPopularity,
    insert_reports,
    insert_shares,
    popular_between,
    upsert_popular,
)
from omega.storage._postgres_rows import APPLY, UPSERT_RELEASED, columns, pending_columns
from omega.storage._release import check_limit, delta_cut, stamp_release
from omega.storage.base import (
    Codebook,
    LivePattern,
    ReleaseDelta,
    Storage,
    StorageStats,
    ViewerRecord,
)

__all__ = ["VECTOR_DIM", "PostgresStorage"]

_log = logging.getLogger(__name__)

#: Dimension of the pgvector column: the embedder's (all-MiniLM-L6-v2).
VECTOR_DIM = 384
#: pg_advisory_xact_lock key serialising concurrent migrate() calls ("omega").
_MIGRATION_LOCK = 0x6F6D656761

Cursor = psycopg.Cursor[tuple[Any, ...]]


@contextmanager
def _translated() -> Iterator[None]:
    """Turn psycopg's errors into Omega's (the URL, which may hold a password, is not named)."""
    try:
        yield
    except psycopg.Error as exc:
        raise StoreError(f"PostgreSQL store: {type(exc).__name__}: {exc}".strip()) from exc


class PostgresStorage(PostgresPopularity, Storage):
    """The constellation's state in a PostgreSQL database given by a libpq URL."""

    def __init__(self, url: str, *, connect_timeout: int = 10) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[psycopg.Connection[tuple[Any, ...]]] = []
        self._closed = False
        self._vector: bool | None = None

    # -- connections and transactions ---------------------------------------------------
    def _conn(self) -> psycopg.Connection[tuple[Any, ...]]:
        conn: psycopg.Connection[tuple[Any, ...]] | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if self._closed:
            raise StoreError("PostgreSQL store is closed")
        try:
            conn = psycopg.connect(
                self._url, autocommit=True, connect_timeout=self._connect_timeout
            )
        except psycopg.OperationalError as exc:
            raise StoreError(f"PostgreSQL store unavailable: {exc}".strip()) from exc
        with self._lock:
            self._connections = [c for c in self._connections if not c.closed]
            self._connections.append(conn)
        self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self, *, snapshot: bool = False) -> Iterator[Cursor]:
        """One transaction; ``snapshot`` makes it a read-only repeatable-read one, so
        several SELECTs see the same committed state."""
        with _translated():
            conn = self._conn()
            with conn.transaction(), conn.cursor() as cur:
                if snapshot:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield cur

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    # -- lifecycle ---------------------------------------------------------------------------
    def migrate(self) -> None:
        migrations = load_migrations("postgres")
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
            )
            cur.execute("SELECT version FROM schema_migrations")
            applied = {row[0] for row in cur.fetchall()}
            check_known(applied, migrations)
            for m in migrations:
                if m.number in applied:
                    continue
                cur.execute(m.sql.encode())
                cur.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                    (m.number, m.name, time.time()),
                )
                _log.info("applied PostgreSQL migration %04d_%s", m.number, m.name)
            self._vector = _enable_vector(cur)
        _log.info("PostgreSQL store ready; pgvector %s", "on" if self._vector else "unavailable")

    def _vector_enabled(self, cur: Cursor) -> bool:
        if self._vector is None:
            cur.execute("SELECT to_regclass('codebook_vectors') IS NOT NULL")
            self._vector = bool(_one(cur)[0])
        return self._vector

    # -- viewers -----------------------------------------------------------------------------
    def create_viewer(self, viewer: ViewerRecord) -> None:
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO viewers (viewer_id, region, device_model, client_version, created_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (viewer_id) DO NOTHING",
                (
                    viewer.viewer_id,
                    viewer.region,
                    viewer.device_model,
                    viewer.client_version,
                    viewer.created_at,
                ),
            )
            if cur.rowcount == 0 and _viewer(cur, viewer.viewer_id) != viewer:
                raise ConflictError(f"viewer {viewer.viewer_id!r} is already registered")

    def get_viewer(self, viewer_id: str) -> ViewerRecord | None:
        with self._tx() as cur:
            return _viewer(cur, viewer_id)

    def use_refresh_token(self, jti: str, viewer_id: str, *, now: float) -> bool:
        with self._tx() as cur:
            _require_viewer(cur, viewer_id)
            cur.execute(
                "INSERT INTO refresh_tokens (jti, viewer_id, used_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (jti) DO NOTHING",
                (jti, viewer_id, now),
            )
            return cur.rowcount == 1

    # -- content -------------------------------------------------------------------------------
    def put_codebook(self, codebook: Codebook) -> None:
        check_codebook(codebook)
        ids = json.dumps(list(codebook.item_ids)) if codebook.item_ids else None
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO codebooks (codebook_id, dim, k, centroids_f16, item_ids)"
                " VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (codebook_id) DO UPDATE SET dim = EXCLUDED.dim, k = EXCLUDED.k,"
                " centroids_f16 = EXCLUDED.centroids_f16, item_ids = EXCLUDED.item_ids,"
                " put_seq = nextval('codebook_puts')",
                (codebook.codebook_id, codebook.dim, codebook.k, codebook.centroids_f16, ids),
            )
            if not self._vector_enabled(cur):
                return
            cur.execute(
                "DELETE FROM codebook_vectors WHERE codebook_id = %s", (codebook.codebook_id,)
            )
            if codebook.dim != VECTOR_DIM:
                _log.info(
                    "codebook %s has dim %d, not %d: centroids kept as f16 bytes only",
                    codebook.codebook_id,
                    codebook.dim,
                    VECTOR_DIM,
                )
                return
            rows = np.frombuffer(codebook.centroids_f16, dtype="<f2").reshape(codebook.k, -1)
            cur.executemany(
                "INSERT INTO codebook_vectors (codebook_id, cell, centroid)"
                " VALUES (%s, %s, %s::vector)",
                [
                    (codebook.codebook_id, cell, "[" + ",".join(map(str, row.tolist())) + "]")
                    for cell, row in enumerate(rows)
                ],
            )

    def get_codebook(self) -> Codebook | None:
        with self._tx() as cur:
            cur.execute(
                "SELECT codebook_id, dim, centroids_f16, k, item_ids FROM codebooks"
                " ORDER BY put_seq DESC LIMIT 1"
            )
            row = cur.fetchone()
        if row is None:
            return None
        ids = tuple(json.loads(row[4])) if row[4] else ()
        return Codebook(row[0], row[1], bytes(row[2]), row[3], ids)

    # -- ingestion -----------------------------------------------------------------------------
    def ingest(
        self, push: PushRequest, *, digest: str, region: str, ack: PushAck, now: float
    ) -> PushAck:
        head = (push.viewer_id, push.batch_id, region, push.codebook_id)
        rows = [
            (*head, r.pattern_id, r.op, r.body, *pending_columns(r.pattern), now)
            for r in pending_rows(push, ack)
        ]
        with self._tx() as cur:
            _require_viewer(cur, push.viewer_id)
            # A concurrent push of the same key waits here until the first one commits.
            cur.execute(
                "INSERT INTO push_batches (viewer_id, batch_id, digest, ack, created_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (viewer_id, batch_id) DO NOTHING",
                (push.viewer_id, push.batch_id, digest, encode(ack), now),
            )
            if cur.rowcount == 0:
                cur.execute(
                    "SELECT digest, ack FROM push_batches WHERE viewer_id = %s AND batch_id = %s",
                    (push.viewer_id, push.batch_id),
                )
                stored_digest, stored_ack = _one(cur)
                if stored_digest != digest:
                    raise ConflictError(
                        f"batch {push.batch_id!r} of viewer {push.viewer_id!r} was already "
                        "pushed with a different payload"
                    )
                return decode_ack(bytes(stored_ack))
            cur.executemany(
                "INSERT INTO pending (viewer_id, batch_id, region, codebook_id, pattern_id, op,"
                " body, task, cells, time_bucket, day_type, success_rate, support, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
            insert_reports(cur, push.reports, now)
            insert_shares(cur, push.shares, now)
        return ack

    # -- federation ----------------------------------------------------------------------------
    def apply_pending(self, *, worker_id: str, limit: int, now: float) -> int:
        check_limit(limit)
        with self._tx() as cur:
            cur.execute(APPLY, {"limit": limit, "now": now})
            applied = int(_one(cur)[0])
        _log.debug("worker %s applied %d contributions", worker_id, applied)
        return applied

    def live_patterns(self, *, codebook_id: str, updated_after: float) -> list[LivePattern]:
        with self._tx() as cur:
            cur.execute(
                "SELECT viewer_id, region, codebook_id, body, updated_at FROM live"
                " WHERE NOT removed AND codebook_id = %s AND updated_at > %s"
                " ORDER BY viewer_id, pattern_id",
                (codebook_id, updated_after),
            )
            rows = cur.fetchall()
        return [LivePattern(r[0], r[1], r[2], decode_pattern(r[3]), r[4]) for r in rows]

    def prune_live(self, *, updated_before: float) -> int:
        with self._tx() as cur:
            cur.execute(
                "DELETE FROM live WHERE updated_at < %s RETURNING removed", (updated_before,)
            )
            return sum(1 for (removed,) in cur.fetchall() if not removed)

    def prune_batches(self, *, created_before: float) -> int:
        with self._tx() as cur:
            cur.execute("DELETE FROM push_batches WHERE created_at < %s", (created_before,))
            return cur.rowcount

    def release_version(self) -> int:
        with self._tx(snapshot=True) as cur:
            return _version(cur)

    def current_release(self) -> tuple[int, list[ConsolidatedPattern]]:
        with self._tx(snapshot=True) as cur:
            version = _version(cur)
            cur.execute(
                "SELECT body FROM released WHERE NOT removed ORDER BY weight DESC, pattern_id"
            )
            rows = cur.fetchall()
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
        with self._tx() as cur:
            # Row lock + re-check: of two workers on the same base, exactly one sees rowcount 1.
            cur.execute(
                "UPDATE release_state SET version = version + 1 WHERE id = 1 AND version = %s",
                (base_version,),
            )
            if cur.rowcount != 1:
                return None
            cur.executemany(
                UPSERT_RELEASED,
                [(p.id, version, p.weight, *columns(p), p.viewers, encode(p)) for p in patterns],
            )
            cur.execute(
                "UPDATE released SET removed = TRUE, version = %s, body = NULL"
                " WHERE pattern_id = ANY(%s) AND NOT removed",
                (version, removed),
            )
            dropped = cur.rowcount
            cur.execute("DELETE FROM trends")
            cur.executemany(
                "INSERT INTO trends (position, cell, region, score, version)"
                " VALUES (%s, %s, %s, %s, %s)",
                [(i, t.cell, t.region, t.score, t.version) for i, t in enumerate(stamped)],
            )
            cur.execute(
                "INSERT INTO releases (version, created_at, upserted, removed)"
                " VALUES (%s, %s, %s, %s)",
                (version, now, len(patterns), dropped),
            )
            upsert_popular(cur, popular or [], version)
        return version

    def release_delta(self, *, since_version: int, limit: int) -> ReleaseDelta:
        check_limit(limit)
        with self._tx(snapshot=True) as cur:
            current = _version(cur)
            cur.execute(
                "SELECT version, body FROM released WHERE NOT removed AND version > %s"
                " ORDER BY version, weight DESC, pattern_id LIMIT %s",
                (since_version, limit + 1),
            )
            rows = cur.fetchall()
            n, version = delta_cut(
                [r[0] for r in rows], limit=limit, since=since_version, current=current
            )
            cur.execute(
                "SELECT pattern_id FROM released WHERE removed AND version > %s AND version <= %s"
                " ORDER BY version, pattern_id",
                (since_version, version),
            )
            removed = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT cell, region, score, version FROM trends ORDER BY position")
            trends = [Trend(cell=r[0], region=r[1], score=r[2], version=r[3]) for r in cur]
            popular = popular_between(cur, since_version, version)
        return ReleaseDelta(
            version=version,
            patterns=[decode_consolidated(r[1]) for r in rows[:n]],
            removed=removed,
            trends=trends,
            popular=popular,
        )

    def stats(self) -> StorageStats:
        with self._tx() as cur:
            cur.execute(
                "SELECT (SELECT count(*) FROM viewers), (SELECT count(*) FROM pending),"
                " (SELECT count(*) FROM live WHERE NOT removed),"
                " (SELECT count(*) FROM released WHERE NOT removed),"
                " (SELECT version FROM release_state WHERE id = 1)"
            )
            viewers, pending, live, released, version = _one(cur)
            capabilities = ("pgvector",) if self._vector_enabled(cur) else ()
        return StorageStats(
            viewers,
            pending,
            live,
            released,
            version,
            backend="postgresql",
            capabilities=capabilities,
        )


def _enable_vector(cur: Cursor) -> bool:
    """Create pgvector and the centroid table if the server has the extension."""
    cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    if cur.fetchone() is None:
        return False
    try:
        with cur.connection.transaction():  # a savepoint: failure leaves the migration intact
            cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as exc:
        _log.warning("pgvector is installed but cannot be enabled: %s", exc)
        return False
    cur.execute(
        "CREATE TABLE IF NOT EXISTS codebook_vectors ("
        " codebook_id TEXT NOT NULL REFERENCES codebooks (codebook_id) ON DELETE CASCADE,"
        " cell INTEGER NOT NULL, centroid vector(384) NOT NULL,"  # VECTOR_DIM
        " PRIMARY KEY (codebook_id, cell))"
    )
    return True


def _one(cur: Cursor) -> tuple[Any, ...]:
    row = cur.fetchone()
    if row is None:
        raise StoreError("PostgreSQL store: expected a row, got none (schema not migrated?)")
    return row


def _version(cur: Cursor) -> int:
    cur.execute("SELECT version FROM release_state WHERE id = 1")
    return int(_one(cur)[0])


def _viewer(cur: Cursor, viewer_id: str) -> ViewerRecord | None:
    cur.execute(
        "SELECT viewer_id, region, device_model, created_at, client_version FROM viewers"
        " WHERE viewer_id = %s",
        (viewer_id,),
    )
    row = cur.fetchone()
    return None if row is None else ViewerRecord(*row)


def _require_viewer(cur: Cursor, viewer_id: str) -> None:
    cur.execute("SELECT 1 FROM viewers WHERE viewer_id = %s", (viewer_id,))
    if cur.fetchone() is None:
        raise InputError(f"viewer {viewer_id!r} is not registered")
