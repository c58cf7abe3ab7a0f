"""The SQLite live set's own file: a round's fold never holds the main file's write lock,
folds exactly once across the two files, and upgrades move the old live table over."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import msgspec
import pytest
from storage_records import ingest, pattern, push, viewer

from omega.errors import StoreError
from omega.storage import SQLiteStorage, open_storage
from omega.storage._migrations import load_migrations
from omega.storage._sqlite_live import live_path


def _live(store: SQLiteStorage) -> dict[str, float]:
    return {
        lp.pattern.id: lp.pattern.success_rate
        for lp in store.live_patterns(codebook_id="cb-1", updated_after=0.0)
    }


def test_live_file_sits_beside_the_main_one(tmp_path: Path) -> None:
    assert live_path(tmp_path / "constellation.db") == tmp_path / "constellation.live.db"
    assert live_path(tmp_path / "omega") == tmp_path / "omega.live"
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "c.db").touch()
    (tmp_path / "link.db").symlink_to(tmp_path / "real" / "c.db")
    assert live_path(tmp_path / "link.db") == tmp_path / "real" / "c.live.db"


def test_a_fold_in_progress_leaves_the_main_file_writable(tmp_path: Path) -> None:
    """While a fold holds the live file and reads the queue, a push commits in the main
    file (``BEGIN IMMEDIATE`` would have locked both files)."""
    store = SQLiteStorage(tmp_path / "omega.db", busy_timeout_ms=2_000)
    try:
        store.migrate()
        viewer(store, "v1")
        ingest(store, push("v1", "b1", added=[pattern("a")]))
        reading, release = threading.Event(), threading.Event()

        def slow_fold(c: sqlite3.Connection) -> int:
            (queued,) = c.execute("SELECT count(*) FROM q.pending").fetchone()
            reading.set()
            release.wait(timeout=10)
            return int(queued)

        seen: list[int] = []
        fold = threading.Thread(target=lambda: seen.append(store._db.live.write(slow_fold)))
        fold.start()
        assert reading.wait(timeout=10)
        ingest(store, push("v1", "b2", added=[pattern("b")]))  # fails if the main is locked
        release.set()
        fold.join(timeout=10)
        assert seen == [1]
        assert store.apply_pending(worker_id="w", limit=10, now=5.0) == 2
        assert _live(store) == {"a": 0.8, "b": 0.8}
    finally:
        store.close()


def test_a_fold_whose_queue_delete_was_lost_applies_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the live file committed and before the queue's rows were deleted: the
    rows stay queued, the next fold skips them (applied_seq) and deletes them."""
    store = SQLiteStorage(tmp_path / "omega.db")
    try:
        store.migrate()
        viewer(store, "v1")
        ingest(store, push("v1", "b1", added=[pattern("a"), pattern("b")]))

        def crash(job: object) -> None:
            raise KeyboardInterrupt("killed before the queue's delete")

        with monkeypatch.context() as m:
            m.setattr(store._db, "write", crash)
            with pytest.raises(KeyboardInterrupt):
                store.apply_pending(worker_id="w", limit=10, now=5.0)
        assert store.stats().pending_contributions == 2
        assert _live(store) == {"a": 0.8, "b": 0.8}

        ingest(store, push("v1", "b2", updated=[pattern("a", success=0.95)]))
        assert store.apply_pending(worker_id="w", limit=10, now=6.0) == 1
        assert store.apply_pending(worker_id="w", limit=10, now=7.0) == 0
        assert store.stats().pending_contributions == 0
        assert _live(store) == {"a": 0.95, "b": 0.8}
    finally:
        store.close()


def _files(tmp_path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in tmp_path.glob("omega*.db")}


def _restore(tmp_path: Path, files: dict[str, bytes], name: str) -> None:
    for leftover in tmp_path.glob(f"{name}*"):
        leftover.unlink()
    (tmp_path / name).write_bytes(files[name])


def _used_store(tmp_path: Path) -> dict[str, bytes]:
    """A closed store whose queue was folded and deleted up to #3; its files before that."""
    store = open_storage(str(tmp_path / "omega.db"))
    viewer(store, "v1")
    store.close()  # checkpointed: each file is whole without its -wal
    before = _files(tmp_path)
    store = open_storage(str(tmp_path / "omega.db"))
    ingest(store, push("v1", "b1", added=[pattern("a"), pattern("b"), pattern("c")]))
    assert store.apply_pending(worker_id="w", limit=10, now=5.0) == 3
    store.close()
    return before


def test_a_main_file_older_than_its_live_file_is_refused_at_start(tmp_path: Path) -> None:
    """Restoring only the main file would let new pushes reuse sequence numbers the live
    file has folded (and skip them): the start-up refuses the pair instead."""
    before = _used_store(tmp_path)
    _restore(tmp_path, before, "omega.db")
    with pytest.raises(StoreError, match="from different times"):
        open_storage(str(tmp_path / "omega.db"))


def test_a_live_file_older_than_its_main_file_is_refused_at_start(tmp_path: Path) -> None:
    before = _used_store(tmp_path)
    _restore(tmp_path, before, "omega.live.db")
    with pytest.raises(StoreError, match="live file is older"):
        open_storage(str(tmp_path / "omega.db"))


def test_a_live_file_moved_aside_starts_after_the_queue_deletions(tmp_path: Path) -> None:
    _used_store(tmp_path)
    for live in tmp_path.glob("omega.live.db*"):
        live.unlink()
    store = open_storage(str(tmp_path / "omega.db"))
    try:
        ingest(store, push("v1", "b2", added=[pattern("d")]))
        assert store.apply_pending(worker_id="w", limit=10, now=6.0) == 1
        assert _live(store) == {"d": 0.8}
    finally:
        store.close()


def test_upgrade_moves_the_live_table_to_its_own_file(tmp_path: Path) -> None:
    """A file at migration 0003 (one file, live set inside) opens with its live rows in
    the live file, its queue still folding, and no live table left in the main file."""
    main = tmp_path / "omega.db"
    body = msgspec.msgpack.encode(pattern("old", success=0.9))
    with sqlite3.connect(main) as conn:
        for m in load_migrations("sqlite")[:3]:
            conn.executescript(m.sql)
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at REAL NOT NULL)"
        )
        conn.executemany(
            "INSERT INTO schema_migrations VALUES (?, ?, 0)",
            [(1, "initial"), (2, "pending_columns"), (3, "popularity")],
        )
        conn.execute("INSERT INTO viewers VALUES ('v1', 'eu', 'tv', '0.1.0', 1)")
        conn.execute(
            "INSERT INTO live (viewer_id, pattern_id, region, codebook_id, task, cells,"
            " time_bucket, day_type, success_rate, support, body, seq, updated_at)"
            " VALUES ('v1', 'old', 'eu', 'cb-1', 'preference', '[1]', 'evening', 'weekend',"
            " 0.9, 5, ?, 7, 50.0)",
            (body,),
        )
    store = open_storage(str(main))
    try:
        ingest(store, push("v1", "b1", added=[pattern("new")]))
        assert store.apply_pending(worker_id="w", limit=10, now=60.0) == 1
        assert _live(store) == {"old": 0.9, "new": 0.8}
        assert store.stats().live_patterns == 2
    finally:
        store.close()
    with sqlite3.connect(main) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "live" not in tables and "pending" in tables
        latest = len(load_migrations("sqlite"))
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (latest,)


def test_a_fold_larger_than_one_delete_chunk_empties_the_queue(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "omega.db")
    try:
        store.migrate()
        for v in range(5):
            viewer(store, f"v{v}")
            added = [pattern(f"p{i}") for i in range(500)]
            ingest(store, push(f"v{v}", "b1", added=added))
        assert store.apply_pending(worker_id="w", limit=10_000, now=5.0) == 2_500
        assert store.stats().pending_contributions == 0
        assert store.stats().live_patterns == 2_500
    finally:
        store.close()
