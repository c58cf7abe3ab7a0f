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

import asyncio
import base64
import logging
import time
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from omega.errors import StoreError
from omega.protocol import EMBEDDING_DIM
from omega.protocol.messages import PushAck, PushRequest
from omega.storage._codec import check_codebook, encode, encode_share, pattern_columns
from omega.storage._migrations import check_known, load_migrations
from omega.storage._pending import pending_rows
from omega.storage._postgres_engine import Cursor, PostgresEngine, translated
from omega.storage._release import check_limit
from omega.storage._sql import POSTGRES, Tx
from omega.storage._sql_rows import FOLDED, LIVE_COLUMNS, NEWER_WINS
from omega.storage._sql_storage import INSERT_BATCH, RELEASE_VERSION, SQLStorage, write_codebook
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


# A push in one statement, its own transaction: the batch row (for a viewer in good
# standing, once per batch id: ``INSERT_BATCH``), then its contributions and reports, each
# inserted only if the batch row was (the data-modifying CTEs all run, joined to
# ``batch``). Each set of rows travels as one JSON document, read by
# ``json_to_recordset`` (one statement, one plan, whatever the count): msgspec writes it
# in C, where psycopg would dump nine array parameters element by element in Python (a
# fifth of a sync's server CPU under ``omega bench server --db embedded-postgres
# --profile``). Bytes travel as base64, cells as array literals. Returns a row only when
# the batch was new. Parameters: see ``_ingest_parameters``.
_INGEST = f"""
WITH batch AS ({INSERT_BATCH}),
patterns AS (
    INSERT INTO pending (viewer_id, batch_id, region, codebook_id, pattern_id, op, body,
                         task, cells, time_bucket, day_type, success_rate, support, created_at)
    SELECT ?, ?, ?, ?, u.pattern_id, u.op, decode(u.body, 'base64'), u.task,
           u.cells::integer[], u.time_bucket, u.day_type, u.success_rate, u.support, ?
    FROM batch, json_to_recordset(?::json)
         AS u(pattern_id text, op text, body text, task text, cells text, time_bucket text,
              day_type text, success_rate float8, support integer)
),
reports AS (
    INSERT INTO pending_reports (seed, value, buckets, epsilon, created_at)
    SELECT u.seed, u.value, u.buckets, u.epsilon, ?
    FROM batch, json_to_recordset(?::json)
         AS u(seed bigint, value integer, buckets integer, epsilon float8)
),
shares AS (
    INSERT INTO pending_shares (body, created_at)
    SELECT decode(u.body, 'base64'), ? FROM batch, json_array_elements_text(?::json) AS u(body)
)
SELECT 1 FROM batch
"""


def _retrieved(task: asyncio.Future[Any]) -> None:
    """Read a shielded statement's exception, if any (logged by whoever awaited it, or
    nobody: a device's retry then finds the push stored or not)."""
    if not task.cancelled():
        task.exception()


def _base64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _cells_literal(cells: Sequence[int]) -> str:
    """A pattern's cells as an ``integer[]`` literal."""
    return "{" + ",".join(str(int(c)) for c in cells) + "}"


def _pending_document(push: PushRequest, ack: PushAck) -> bytes:
    """The push's queued contributions (``pending_rows``) as ``_INGEST`` reads them."""
    rows: list[dict[str, object]] = []
    for row in pending_rows(push, ack):
        found: dict[str, object] = {"pattern_id": row.pattern_id, "op": row.op}
        if row.pattern is not None:  # a removal carries only its id
            task, cells, time_bucket, day_type, success_rate, support = pattern_columns(row.pattern)
            found |= {
                "body": _base64(row.body),
                "task": task,
                "cells": _cells_literal(cells),
                "time_bucket": time_bucket,
                "day_type": day_type,
                "success_rate": success_rate,
                "support": support,
            }
        rows.append(found)
    return msgspec.json.encode(rows)


def _ingest_parameters(
    push: PushRequest, *, digest: str, region: str, ack: PushAck, now: float
) -> list[Any]:
    """``_INGEST``'s parameters: the batch row, then each insert's constants and rows."""
    reports = [
        {"seed": r.seed, "value": r.value, "buckets": r.buckets, "epsilon": r.epsilon}
        for r in push.reports
    ]
    shares = [_base64(encode_share(r)) for r in push.shares]
    return [
        *(push.viewer_id, push.batch_id, digest, encode(ack), now, push.viewer_id),
        *(push.viewer_id, push.batch_id, region, push.codebook_id, now),
        _pending_document(push, ack).decode(),
        now,
        msgspec.json.encode(reports).decode(),
        now,
        msgspec.json.encode(shares).decode(),
    ]


class _Dropped(Exception):
    """A statement's connection was gone (``error``: what psycopg said)."""

    def __init__(self, error: psycopg.OperationalError) -> None:
        super().__init__(str(error))
        self.error = error


async def _first_row(
    pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]],
    sql: str,
    params: Sequence[Any],
) -> tuple[Any, ...] | None:
    """``sql``'s first row on a connection of ``pool``; _Dropped if the connection was
    found closed (the pool discards it as it comes back)."""
    async with pool.connection() as conn:
        try:
            cursor = await conn.execute(POSTGRES.sql(sql), params)
            return await cursor.fetchone()
        except psycopg.OperationalError as exc:
            if conn.broken:
                raise _Dropped(exc) from None
            raise


class PostgresStorage(SQLStorage[PostgresEngine]):
    """The constellation's state in a PostgreSQL database given by a libpq URL."""

    def __init__(self, url: str, *, connect_timeout: int = 10) -> None:
        super().__init__(PostgresEngine(url, connect_timeout=connect_timeout))
        self._url = url
        self._connect_timeout = connect_timeout
        self._vector: bool | None = None
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]] | None = None

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

    # -- ingestion: one statement in the usual case ----------------------------------------
    def ingest(
        self, push: PushRequest, *, digest: str, region: str, ack: PushAck, now: float
    ) -> PushAck:
        """A new batch of a viewer in good standing is one statement (``_INGEST``); any
        other case (a retry, a revoked viewer, a conflicting payload) takes the shared
        path, which finds out which and answers as both backends do."""
        parameters = _ingest_parameters(push, digest=digest, region=region, ack=ack, now=now)
        if self._db.statement(_INGEST, parameters) is not None:
            return ack
        return super().ingest(push, digest=digest, region=region, ack=ack, now=now)

    async def open_async(self) -> None:
        """Open the connections the server's event loop uses for what a sync awaits (a
        push's one statement, the release version): no worker-thread hop per sync."""
        # A statement waits at most connect_timeout for a connection (as a thread's own
        # connection does for its connect): an outage is a quick error, not a queue.
        pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]] = AsyncConnectionPool(
            self._url,
            min_size=2,
            max_size=8,
            open=False,
            timeout=self._connect_timeout,
            kwargs={"autocommit": True, "connect_timeout": self._connect_timeout},
        )
        try:
            await pool.open(wait=True, timeout=self._connect_timeout)
        except (psycopg.Error, PoolTimeout) as exc:
            await pool.close()
            raise StoreError(f"PostgreSQL store unavailable: {exc}".strip()) from exc
        self._pool = pool

    async def close_async(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _one_async(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """One statement on the event loop's connections (autocommit), its first row.

        Connections are not checked when taken (a round trip per statement, measured at
        ~8 % of a sync's server samples); a statement that finds its connection dropped
        (the server restarted, failed over, or ended it) checks the pool's idle ones,
        which drops the dead, and goes once more on a live one. Every statement here may
        run twice: a read, or a push whose batch id makes a second run a retry."""
        pool = self._pool
        if pool is None:
            raise StoreError("PostgreSQL store: open_async() was not called on this loop")
        with translated():  # psycopg's errors and the pool's PoolTimeout (a psycopg.Error)
            try:
                return await _first_row(pool, sql, params)
            except _Dropped:
                await pool.check()
            try:
                return await _first_row(pool, sql, params)
            except _Dropped as dropped:
                raise dropped.error from None

    async def ingest_async(
        self, push: PushRequest, *, digest: str, region: str, ack: PushAck, now: float
    ) -> PushAck:
        """:meth:`ingest` on the event loop's connections once :meth:`open_async` ran (on
        worker threads before); the write stands even if the caller is cancelled."""
        if self._pool is None:
            return await super().ingest_async(push, digest=digest, region=region, ack=ack, now=now)
        parameters = _ingest_parameters(push, digest=digest, region=region, ack=ack, now=now)
        statement = asyncio.ensure_future(self._one_async(_INGEST, parameters))
        # A caller cancelled meanwhile never reads the outcome: retrieve it all the same.
        statement.add_done_callback(_retrieved)
        if await asyncio.shield(statement) is not None:
            return ack
        return await super().ingest_async(push, digest=digest, region=region, ack=ack, now=now)

    async def release_version_async(self) -> int:
        if self._pool is None:
            return await super().release_version_async()
        row = await self._one_async(RELEASE_VERSION)
        if row is None:
            raise StoreError("PostgreSQL store: no release state (schema not migrated?)")
        return int(row[0])

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
