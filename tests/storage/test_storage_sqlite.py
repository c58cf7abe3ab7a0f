"""What only the SQLite backend promises: WAL on the file, foreign keys, durable commits."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from storage_records import ingest, pattern, push

from omega.errors import ConfigError, StoreError
from omega.migrations import migrate_sqlite
from omega.storage import SQLiteStorage, open_storage
from omega.storage._migrations import load_migrations
from omega.storage.base import ViewerRecord


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
        conn = store._db.conn()  # the calling thread's connection
        assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (10_000,)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("query", "synchronous"), [("", 2), ("?synchronous=FULL", 2), ("?synchronous=normal", 1)]
)
def test_a_url_may_ask_for_commits_that_do_not_wait_for_the_disk(
    tmp_path: Path, query: str, synchronous: int
) -> None:
    store = open_storage(f"sqlite:///{tmp_path}/omega.db{query}")
    try:
        assert isinstance(store, SQLiteStorage)
        assert store.path == tmp_path / "omega.db"
        conn = store._db.conn()
        assert conn.execute("PRAGMA synchronous").fetchone() == (synchronous,)
    finally:
        store.close()


@pytest.mark.parametrize("query", ["?synchronous=off", "?journal_mode=delete", "?synchronous"])
def test_a_url_with_another_option_is_refused_naming_the_one_there_is(
    tmp_path: Path, query: str
) -> None:
    with pytest.raises(ConfigError, match=r"only option is \?synchronous=full"):
        open_storage(f"sqlite:///{tmp_path}/omega.db{query}")
    assert not (tmp_path / "omega.db").exists()


def test_a_write_waits_for_another_process_lock_then_commits(tmp_path: Path) -> None:
    """A write waits for the lock another connection holds (a round in a child process)."""
    store = SQLiteStorage(tmp_path / "omega.db")
    try:
        store.migrate()
        other = sqlite3.connect(
            tmp_path / "omega.db", isolation_level=None, check_same_thread=False
        )
        other.execute("BEGIN IMMEDIATE")
        released = threading.Timer(0.3, other.execute, args=("COMMIT",))
        released.start()
        started = time.monotonic()
        store.create_viewer(ViewerRecord("v1", "eu", "tv", created_at=1.0))
        assert time.monotonic() - started >= 0.25  # it waited for the lock, then wrote
        released.join()
        other.close()
        assert store.stats().viewers == 1
    finally:
        store.close()


def test_a_lock_never_released_is_a_clear_error(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "omega.db", busy_timeout_ms=200)
    try:
        store.migrate()
        other = sqlite3.connect(tmp_path / "omega.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="locked"):
            store.create_viewer(ViewerRecord("v1", "eu", "tv", created_at=1.0))
        other.execute("ROLLBACK")
        other.close()
        store.create_viewer(ViewerRecord("v1", "eu", "tv", created_at=1.0))  # fine again
        assert store.stats().viewers == 1
    finally:
        store.close()


def test_pruning_many_batch_records_takes_short_transactions(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "omega.db")
    try:
        store.migrate()
        store.create_viewer(ViewerRecord("v1", "eu", "tv", created_at=1.0))
        with sqlite3.connect(tmp_path / "omega.db") as conn:
            conn.executemany(
                "INSERT INTO push_batches (viewer_id, batch_id, digest, ack, created_at)"
                " VALUES ('v1', ?, 'd', x'00', ?)",
                [(f"b{i}", 10.0 if i < 2_500 else 99.0) for i in range(2_600)],
            )
        assert store.prune_batches(created_before=50.0) == 2_500
        assert store.prune_batches(created_before=50.0) == 0
        assert store.prune_batches(created_before=100.0) == 100
    finally:
        store.close()


def test_the_release_version_is_read_without_holding_a_snapshot(tmp_path: Path) -> None:
    """Read at every pull as one statement, no ``BEGIN``/``ROLLBACK``: the reader is left
    in no transaction, so its next read sees what was committed meanwhile."""
    store = SQLiteStorage(tmp_path / "omega.db")
    try:
        store.migrate()
        assert store.release_version() == 0
        assert store.load().in_use == 0
        with sqlite3.connect(tmp_path / "omega.db") as conn:
            conn.execute("UPDATE release_state SET version = 5 WHERE id = 1")
        assert store.release_version() == 5
        assert store.load().in_use == 0
    finally:
        store.close()


def test_load_counts_writes_queued_behind_the_writer(tmp_path: Path) -> None:
    """While the writer thread is busy, a second write waits in its queue (the
    ``omega_db_write_queue_length`` gauge); it is empty again once both committed."""
    store = SQLiteStorage(tmp_path / "omega.db")
    store.migrate()
    holding, release = threading.Event(), threading.Event()

    def slow(tx: object) -> None:
        holding.set()
        release.wait(timeout=30)

    try:
        first = threading.Thread(target=store._db.write, args=(slow,))
        first.start()
        assert holding.wait(timeout=30)
        second = threading.Thread(
            target=store.create_viewer, args=(ViewerRecord("v1", "eu", "tv", created_at=1.0),)
        )
        second.start()
        deadline = time.monotonic() + 30
        while store.load().write_queue == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.load().write_queue == 1
        release.set()
        first.join()
        second.join()
        assert store.load().write_queue == 0
        assert store.stats().viewers == 1
    finally:
        release.set()
        store.close()


def test_a_push_s_rows_lose_their_viewer_keys_and_the_queue_keeps_its_numbering(
    tmp_path: Path,
) -> None:
    """Migration 0012 rebuilds push_batches and pending without foreign keys; the rows stay,
    and the queue numbers on from its last number, past rows already deleted."""
    path = tmp_path / "omega.db"
    before = [m for m in load_migrations("sqlite") if m.number < 12]
    with sqlite3.connect(path) as conn:
        migrate_sqlite(conn, before, path)
        conn.execute("INSERT INTO viewers VALUES ('v1', 'eu', 'tv', '0.1.0', 1, NULL)")
        conn.execute("INSERT INTO push_batches VALUES ('v1', 'b1', 'd', x'80', 1)")
        for pid in ("a", "b", "c"):
            conn.execute(
                "INSERT INTO pending (viewer_id, batch_id, region, codebook_id, pattern_id,"
                " op, body, created_at) VALUES ('v1', 'b1', 'eu', 'cb-1', ?, 'remove', NULL, 1)",
                (pid,),
            )
        conn.execute("DELETE FROM pending WHERE pattern_id != 'b'")  # as if folded
    conn.close()
    store = open_storage(str(path))
    try:
        p = push("v1", "b2", added=[pattern("d")])
        ingest(store, p)
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        for table in ("push_batches", "pending"):
            assert conn.execute(f"PRAGMA foreign_key_list({table})").fetchall() == []
        assert conn.execute("SELECT seq, pattern_id FROM pending ORDER BY seq").fetchall() == [
            (2, "b"),
            (4, "d"),
        ]
        assert conn.execute("SELECT batch_id FROM push_batches ORDER BY 1").fetchall() == [
            ("b1",),
            ("b2",),
        ]
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
