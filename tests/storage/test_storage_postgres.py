"""What only the PostgreSQL backend does: pgvector centroids, when the extension can be had."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit, urlunsplit

import msgspec
import numpy as np
import psycopg
import pytest
from psycopg import sql
from storage_records import CODEBOOK, ack_all, digest, ingest, pattern, push, viewer

from omega.protocol.messages import FrequencyReport
from omega.storage import Codebook, open_storage

pytestmark = pytest.mark.postgres


def test_codebook_centroids_land_in_a_vector_column(postgres_db_url: str) -> None:
    store = open_storage(postgres_db_url)
    try:
        assert store.stats().capabilities == ("pgvector",)
        centroids = np.random.default_rng(0).standard_normal((5, 384)).astype("<f2")
        store.put_codebook(Codebook("cb-384", 384, centroids.tobytes(), 5))
        store.put_codebook(Codebook("cb-8", 8, centroids[:, :8].copy().tobytes(), 5))
    finally:
        store.close()
    with psycopg.connect(postgres_db_url) as conn:
        rows = conn.execute(
            "SELECT codebook_id, cell, vector_dims(centroid), centroid::text"
            " FROM codebook_vectors ORDER BY cell"
        ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [("cb-384", i, 384) for i in range(5)]
    first = np.array([float(x) for x in rows[0][3].strip("[]").split(",")])
    assert np.allclose(first, centroids[0].astype(np.float32), atol=1e-3)


def test_without_pgvector_the_store_still_works(postgres_url: str) -> None:
    """A role that may not create the extension (pgvector is not a trusted extension) gets
    a working store without the capability, and says so in its stats."""
    name = f"omega_novector_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(name)
            )
        )
    parts = urlsplit(postgres_url)
    url = urlunsplit(
        parts._replace(netloc=f"{name}@{parts.hostname}:{parts.port}", path=f"/{name}")
    )
    try:
        store = open_storage(url)
        try:
            assert store.stats().capabilities == ()
            centroids = np.zeros((2, 384), dtype="<f2").tobytes()
            store.put_codebook(Codebook("cb", 384, centroids, 2))
            found = store.get_codebook()
            assert found is not None and found.centroids_f16 == centroids
        finally:
            store.close()
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def test_apply_pending_skips_rows_a_running_worker_holds(postgres_db_url: str) -> None:
    store = open_storage(postgres_db_url)
    try:
        viewer(store, "v1")
        ingest(store, push("v1", "b1", added=[pattern("a"), pattern("b"), pattern("c")]))
        ingest(store, push("v1", "b2", added=[pattern("d"), pattern("e")]))
        other = psycopg.connect(postgres_db_url, autocommit=True)  # a worker mid-round
        with other, other.transaction():
            other.execute("SELECT seq FROM pending ORDER BY seq LIMIT 2 FOR UPDATE")
            # Neither blocks on the held rows nor applies them.
            assert store.apply_pending(worker_id="w2", limit=100, now=1.0) == 3
            assert store.apply_pending(worker_id="w2", limit=100, now=1.0) == 0
            raise psycopg.Rollback()  # that worker dies: its lease is released
        assert store.apply_pending(worker_id="w2", limit=100, now=2.0) == 2
        live = store.live_patterns(codebook_id=CODEBOOK, updated_after=0.0)
        assert sorted(lp.pattern.id for lp in live) == ["a", "b", "c", "d", "e"]
    finally:
        store.close()


#: The tables that grow with the fleet (migration 0008), each hash-partitioned 16 ways.
_PARTITIONED = ("live", "pending", "push_batches", "refresh_tokens", "viewers")


def test_the_fleet_tables_are_hash_partitioned_by_viewer(postgres_db_url: str) -> None:
    store = open_storage(postgres_db_url)
    try:
        for v in range(40):
            viewer(store, f"v{v}")
            ingest(store, push(f"v{v}", "b1", added=[pattern(f"p{v}")]))
        assert store.apply_pending(worker_id="w", limit=20, now=5.0) == 20
        ingest(store, push("v0", "b2", added=[pattern("late")]))  # seq keeps counting up
    finally:
        store.close()
    with psycopg.connect(postgres_db_url) as conn:
        keys = dict(
            conn.execute(
                "SELECT c.relname, pg_get_partkeydef(c.oid) FROM pg_partitioned_table p"
                " JOIN pg_class c ON c.oid = p.partrelid"
                " WHERE c.relnamespace = current_schema()::regnamespace"
            ).fetchall()
        )
        assert keys == dict.fromkeys(_PARTITIONED, "HASH (viewer_id)")
        for table in _PARTITIONED:
            count = conn.execute(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass", (table,)
            ).fetchone()
            assert count == (16,), table
        # 40 viewers spread over the partitions (all in one would mean no hashing).
        used = conn.execute("SELECT count(DISTINCT tableoid) FROM viewers").fetchone()
        assert used is not None and used[0] > 8
        seqs = [r[0] for r in conn.execute("SELECT seq FROM pending ORDER BY seq").fetchall()]
        assert len(seqs) == 21 and seqs == sorted(set(seqs))


def test_the_loops_connections_outlive_their_backends(postgres_db_url: str) -> None:
    """The event loop's pool does not check a connection each time it hands one out: a
    statement that finds its connection dropped (here every backend but the killer's is
    ended, as a server restart or a failover would) runs once more on a live one, and a
    push doing so is stored once."""
    store = open_storage(postgres_db_url)
    viewer(store, "v1")
    p = push("v1", "b1", added=[pattern("a"), pattern("b")])
    ack = ack_all(p)

    async def run() -> None:
        await store.open_async()
        try:
            assert await store.release_version_async() == 0  # the pool's connections are up
            with psycopg.connect(postgres_db_url, autocommit=True) as admin:
                (ended,) = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend'"
                ).fetchone() or (0,)
            assert ended >= 2  # the pool's two, at least
            assert (
                await store.ingest_async(p, digest=digest(p), region="eu", ack=ack, now=1.0) == ack
            )
            assert (
                await store.ingest_async(p, digest=digest(p), region="eu", ack=ack, now=2.0) == ack
            )
            assert await store.release_version_async() == 0
        finally:
            await store.close_async()

    try:
        asyncio.run(run())
    finally:
        store.close()
    again = open_storage(postgres_db_url)
    try:
        assert again.stats().pending_contributions == 2
    finally:
        again.close()


def test_a_pushs_rows_keep_every_bit_and_no_foreign_key(postgres_db_url: str) -> None:
    """The push statement's JSON rows (``_INGEST``) carry floats and wide integers
    exactly, and its tables have no foreign keys left (migration 0011)."""
    odd = [
        msgspec.structs.replace(pattern("third", cells=(3, 65535)), success_rate=1 / 3),
        msgspec.structs.replace(pattern("tiny"), success_rate=5e-324, support=2**31 - 1),
        msgspec.structs.replace(pattern("almost"), success_rate=0.9999999999999999),
    ]
    reports = [
        FrequencyReport(seed=2**63 - 1, value=7, buckets=2982, epsilon=1 / 3),
        FrequencyReport(seed=0, value=0, buckets=3, epsilon=1e-300),
    ]
    store = open_storage(postgres_db_url)
    try:
        viewer(store, "v1")
        p = msgspec.structs.replace(push("v1", "b1", added=odd), reports=reports)
        store.ingest(p, digest=digest(p), region="eu", ack=ack_all(p), now=1.0)
        assert [r for _, r in store.pending_reports(limit=10)] == reports
        assert store.apply_pending(worker_id="w", limit=10, now=2.0) == 3
        live = store.live_patterns(codebook_id=CODEBOOK, updated_after=0.0)
        assert sorted((lp.pattern for lp in live), key=lambda x: x.id) == sorted(
            odd, key=lambda x: x.id
        )
    finally:
        store.close()
    with psycopg.connect(postgres_db_url) as conn:
        keys = conn.execute(
            "SELECT conrelid::regclass::text FROM pg_constraint WHERE contype = 'f'"
            " AND conrelid IN (SELECT oid FROM pg_class WHERE relname LIKE 'pending%'"
            " OR relname LIKE 'push_batches%')"
        ).fetchall()
    assert keys == []
