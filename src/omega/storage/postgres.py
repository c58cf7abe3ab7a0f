"""PostgreSQL backend (psycopg 3): the production store, shared by servers and workers.

Threading: one connection per thread, every method one explicit transaction on it (see
``_postgres_engine``, which runs the SQL both backends share). This class adds what only
PostgreSQL does.

Several federation workers may share one database: ``apply_pending`` leases rows with
``FOR UPDATE SKIP LOCKED`` (no two workers see the same contribution) and
``commit_release`` is optimistic on the version row (``UPDATE ... WHERE version = base``).

pgvector is a detected capability, not a requirement: ``migrate`` runs
``CREATE EXTENSION IF NOT EXISTS vector`` and, if that works, keeps the centroids of each
codebook of the embedding size (``omega.protocol.EMBEDDING_DIM``) in
``codebook_vectors.centroid vector(EMBEDDING_DIM)`` as well as in the f16 bytes every
reader uses. ``stats().capabilities`` says which case holds.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import psycopg

from omega.protocol import EMBEDDING_DIM
from omega.storage._codec import check_codebook
from omega.storage._migrations import check_known, load_migrations
from omega.storage._postgres_engine import Cursor, PostgresEngine
from omega.storage._release import check_limit
from omega.storage._sql import Tx
from omega.storage._sql_rows import FOLDED, LIVE_COLUMNS, NEWER_WINS
from omega.storage._sql_storage import SQLStorage, write_codebook
from omega.storage.base import Codebook

__all__ = ["PostgresStorage"]

_log = logging.getLogger(__name__)

#: pg_advisory_xact_lock key serialising concurrent migrate() calls ("omega").
_MIGRATION_LOCK = 0x6F6D656761

# Lease (SKIP LOCKED: rows another worker holds are invisible), delete, keep the newest
# contribution per (viewer, pattern), fold it into the live set last-writer-wins on seq,
# all in one statement. Rows are inserted in key order so that concurrent workers lock
# live rows in the same order. Parameters: limit, now.
_APPLY = f"""
WITH lease AS (
    SELECT viewer_id, seq FROM pending ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED
), leased AS (
    DELETE FROM pending p USING lease
    WHERE p.viewer_id = lease.viewer_id AND p.seq = lease.seq RETURNING p.*
), latest AS (
    SELECT DISTINCT ON (viewer_id, pattern_id) * FROM leased
    ORDER BY viewer_id, pattern_id, seq DESC
), folded AS (
    INSERT INTO live ({LIVE_COLUMNS})
    SELECT {FOLDED}, ?
    FROM latest ORDER BY viewer_id, pattern_id
    {NEWER_WINS}
)
SELECT count(*) FROM leased
"""


class PostgresStorage(SQLStorage[PostgresEngine]):
    """The constellation's state in a PostgreSQL database given by a libpq URL."""

    def __init__(self, url: str, *, connect_timeout: int = 10) -> None:
        super().__init__(PostgresEngine(url, connect_timeout=connect_timeout))
        self._vector: bool | None = None

    def close(self) -> None:
        self._db.close()

    # -- lifecycle ---------------------------------------------------------------------------
    def migrate(self) -> None:
        migrations = load_migrations("postgres")
        with self._db.cursor() as cur:
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

    # -- pgvector ------------------------------------------------------------------------------
    def _vector_enabled(self, tx: Tx) -> bool:
        if self._vector is None:
            self._vector = bool(tx.one("SELECT to_regclass('codebook_vectors') IS NOT NULL")[0])
        return self._vector

    def _capabilities(self, tx: Tx) -> tuple[str, ...]:
        return ("pgvector",) if self._vector_enabled(tx) else ()

    def put_codebook(self, codebook: Codebook) -> None:
        check_codebook(codebook)
        with self._db.transaction() as tx:
            write_codebook(tx, codebook)
            if self._vector_enabled(tx):
                _write_vectors(tx, codebook)

    # -- federation ----------------------------------------------------------------------------
    def apply_pending(self, *, worker_id: str, limit: int, now: float) -> int:
        check_limit(limit)
        with self._db.transaction() as tx:
            applied = int(tx.one(_APPLY, (limit, now))[0])
        _log.debug("worker %s applied %d contributions", worker_id, applied)
        return applied

    def prune_batches(self, *, created_before: float) -> int:
        with self._db.transaction() as tx:
            return tx.run("DELETE FROM push_batches WHERE created_at < ?", (created_before,))


def _write_vectors(tx: Tx, codebook: Codebook) -> None:
    tx.run("DELETE FROM codebook_vectors WHERE codebook_id = ?", (codebook.codebook_id,))
    if codebook.dim != EMBEDDING_DIM:
        _log.info(
            "codebook %s has dim %d, not %d: centroids kept as f16 bytes only",
            codebook.codebook_id,
            codebook.dim,
            EMBEDDING_DIM,
        )
        return
    rows = np.frombuffer(codebook.centroids_f16, dtype="<f2").reshape(codebook.k, -1)
    tx.many(
        "INSERT INTO codebook_vectors (codebook_id, cell, centroid) VALUES (?, ?, ?::vector)",
        [
            (codebook.codebook_id, cell, "[" + ",".join(map(str, row.tolist())) + "]")
            for cell, row in enumerate(rows)
        ],
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
        f" cell INTEGER NOT NULL, centroid vector({EMBEDDING_DIM}) NOT NULL,"
        " PRIMARY KEY (codebook_id, cell))"
    )
    return True
