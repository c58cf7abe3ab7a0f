"""Migrations, the URL factory and error translation, on both backends."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import msgspec
import psycopg
import pytest
from storage_records import ingest, pattern, push, viewer

from omega.errors import ConfigError, CorruptStoreError, SchemaVersionError, StoreError
from omega.storage import SQLiteStorage, Storage, StorageStats, open_storage
from omega.storage._migrations import load_migrations
from omega.storage.postgres import PostgresStorage

#: Every numbered migration, as recorded once applied (on both backends up to 0003).
_COMMON = [(1, "initial"), (2, "pending_columns"), (3, "popularity")]
MIGRATIONS = [
    *_COMMON,
    (4, "shared_reports"),
    (5, "attestation"),
    (6, "device_keys"),
    (7, "viewer_revoked"),
    (8, "partition_by_viewer"),
    (9, "replicas"),
    (10, "cowatch"),
    (11, "push_rows_without_viewer_keys"),
    (12, "cowatch_points"),
    (13, "cowatch_privacy"),
    (14, "cowatch_unreleased"),
    (15, "cowatch_ranking"),
]
#: SQLite's live set moved to a file of its own (PostgreSQL has no single write lock).
SQLITE_MIGRATIONS = [
    *_COMMON,
    (4, "live_moved"),
    (5, "shared_reports"),
    (6, "attestation"),
    (7, "device_keys"),
    (8, "viewer_revoked"),
    (9, "cowatch"),
    (10, "cowatch_points"),
    (11, "cowatch_privacy"),
    (12, "push_rows_without_viewer_keys"),
    (13, "cowatch_unreleased"),
    (14, "cowatch_ranking"),
]


def _expected(url: str) -> list[tuple[int, str]]:
    return SQLITE_MIGRATIONS if url.startswith("sqlite:///") else MIGRATIONS


def _migrations_table(url: str) -> list[tuple[int, str]]:
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return conn.execute("SELECT version, name FROM schema_migrations ORDER BY 1").fetchall()
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT version, name FROM schema_migrations ORDER BY 1").fetchall()


def _record_migration(url: str, number: int) -> None:
    query = "INSERT INTO schema_migrations (version, name, applied_at) VALUES ({0}, 'future', 0)"
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(query.format(number))
    else:
        with psycopg.connect(url) as conn:
            conn.execute(query.format(number).encode())


def test_migrate_from_empty_records_numbered_migrations(store: Storage, storage_url: str) -> None:
    assert _migrations_table(storage_url) == _expected(storage_url)
    assert store.stats() == StorageStats(
        0, 0, 0, 0, 0, backend=store.stats().backend, capabilities=store.stats().capabilities
    )


def test_migrate_again_is_a_no_op_and_keeps_data(store: Storage, storage_url: str) -> None:
    viewer(store, "v1")
    store.migrate()
    store.migrate()
    again = open_storage(storage_url)  # a second process starting up on the same database
    try:
        assert again.get_viewer("v1") is not None
    finally:
        again.close()
    assert _migrations_table(storage_url) == _expected(storage_url)


def test_database_from_a_newer_omega_is_refused(store: Storage, storage_url: str) -> None:
    _record_migration(storage_url, 9999)
    with pytest.raises(SchemaVersionError, match="9999"):
        store.migrate()


def test_stats_name_the_backend(store: Storage, storage_url: str) -> None:
    stats = store.stats()
    if storage_url.startswith("sqlite"):
        assert (stats.backend, stats.capabilities) == ("sqlite", ())
    else:
        # The embedded server ships pgvector, so the capability must be detected.
        assert (stats.backend, stats.capabilities) == ("postgresql", ("pgvector",))


def test_closed_store_refuses_work(storage_url: str) -> None:
    store = open_storage(storage_url)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.stats()
    with pytest.raises(StoreError, match="closed"):
        store.release_version()  # one statement on its own (Engine.read_one)


# -- factory -------------------------------------------------------------------------------
def test_factory_picks_sqlite_for_urls_and_plain_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absolute = open_storage(f"sqlite:///{tmp_path}/a/abs.db")
    plain = open_storage(str(tmp_path / "plain.db"))
    monkeypatch.chdir(tmp_path)
    relative = open_storage("sqlite:///rel.db")
    try:
        for s in (absolute, plain, relative):
            assert isinstance(s, SQLiteStorage)
            assert s.stats().version == 0
        assert (tmp_path / "a" / "abs.db").exists()
        assert (tmp_path / "rel.db").exists()
    finally:
        for s in (absolute, plain, relative):
            s.close()


@pytest.mark.postgres
def test_factory_picks_postgres_for_both_schemes(postgres_db_url: str) -> None:
    for url in (postgres_db_url, postgres_db_url.replace("postgresql://", "postgres://", 1)):
        store = open_storage(url)
        try:
            assert isinstance(store, PostgresStorage)
            assert store.stats().backend == "postgresql"
        finally:
            store.close()


@pytest.mark.parametrize("url", ["mysql://u@h/db", "sqlite://", "sqlite:///", "", "redis://x"])
def test_factory_rejects_unknown_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        open_storage(url)


def test_factory_rejects_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="directory"):
        open_storage(str(tmp_path))


# -- driver errors become Omega errors -------------------------------------------------------
def test_sqlite_garbage_file_is_a_corrupt_store(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database " * 200)
    with pytest.raises(CorruptStoreError, match=r"garbage\.db"):
        open_storage(str(path))


def test_postgres_unreachable_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="unavailable"):
        open_storage("postgresql://nobody@127.0.0.1:9/omega?connect_timeout=2")


def test_concurrent_startups_migrate_once(storage_url: str) -> None:
    stores: list[Storage] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        barrier.wait()
        stores.append(open_storage(storage_url))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(stores) == 4
        assert _migrations_table(storage_url) == _expected(storage_url)
    finally:
        for s in stores:
            s.close()


def test_one_handle_serves_many_threads(store: Storage) -> None:
    """The server calls one handle from its threadpool: writes from many threads at once
    must wait for each other (busy timeout / row locks), never fail."""
    for v in range(8):
        viewer(store, f"v{v}")
    barrier = threading.Barrier(8)

    def push_many(v: int) -> None:
        barrier.wait()
        for b in range(10):
            ingest(store, push(f"v{v}", f"b{b}", added=[pattern(f"p{b}")]))
            store.release_delta(since_version=0, limit=10)

    threads = [threading.Thread(target=push_many, args=(v,)) for v in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.stats().pending_contributions == 80


def test_upgrade_keeps_contributions_queued_before_it(storage_url: str) -> None:
    """A database left at migration 0001 with work queued upgrades in place, and the
    contributions queued under the old schema still fold into the live set."""
    backend = "sqlite" if storage_url.startswith("sqlite") else "postgres"
    first = load_migrations(backend)[0]
    body = msgspec.msgpack.encode(pattern("old", success=0.85))
    rows = [
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_at DOUBLE PRECISION NOT NULL)",
        "INSERT INTO schema_migrations VALUES (1, 'initial', 0)",
        "INSERT INTO viewers VALUES ('v1', 'eu', 'tv', '0.1.0', 1)",
    ]
    insert_pending = (
        "INSERT INTO pending (viewer_id, batch_id, region, codebook_id, pattern_id, op, body,"
        " created_at) VALUES ('v1', 'b1', 'eu', 'cb-1', 'old', 'upsert', {}, 1)"
    )
    if backend == "sqlite":
        with sqlite3.connect(storage_url.removeprefix("sqlite:///")) as conn:
            conn.executescript(first.sql)
            for statement in rows:
                conn.execute(statement)
            conn.execute(insert_pending.format("?"), (body,))
    else:
        with psycopg.connect(storage_url) as conn:
            conn.execute(first.sql.encode())
            for statement in rows:
                conn.execute(statement.encode())
            conn.execute(insert_pending.format("%s").encode(), (body,))
    store = open_storage(storage_url)
    try:
        assert _migrations_table(storage_url) == _expected(storage_url)
        assert store.apply_pending(worker_id="w", limit=10, now=5.0) == 1
        live = store.live_patterns(codebook_id="cb-1", updated_after=0.0)
        assert [lp.pattern for lp in live] == [pattern("old", success=0.85)]
    finally:
        store.close()


def test_load_sees_a_transaction_held_open(store: Storage) -> None:
    """``load`` (the ``omega_db_pool_*`` gauges) counts open connections and those inside
    a transaction, from memory: it answers while a transaction is open."""
    store.stats()  # this thread's connection exists now
    idle = store.load()
    assert idle.connections >= 1 and idle.in_use == 0 and idle.write_queue == 0
    with store._db.read(snapshot=True):  # a transaction held open, as a slow query holds one
        busy = store.load()
    assert (busy.connections, busy.in_use) == (idle.connections, 1)
    assert store.load().in_use == 0
