"""Versioned releases: optimistic commits, deltas with a safe cursor, removals, trends, stats."""

from __future__ import annotations

import threading

import msgspec
import pytest
from storage_records import OpenStore, ingest, pattern, push, released, viewer

from omega.errors import InputError
from omega.protocol.messages import Trend
from omega.storage import Storage, StorageStats


def _commit(
    store: Storage,
    base: int,
    upserted: list[str] | None = None,
    removed: list[str] | None = None,
    *,
    weights: dict[str, float] | None = None,
    trends: list[Trend] | None = None,
) -> int | None:
    weights = weights or {}
    return store.commit_release(
        base_version=base,
        upserted=[released(pid, weight=weights.get(pid, 1.0)) for pid in upserted or []],
        removed=removed or [],
        trends=trends or [],
        now=1_000.0 + base,
    )


def test_commit_release_publishes_the_next_version(store: Storage) -> None:
    assert store.current_release() == (0, [])
    assert store.release_version() == 0
    assert _commit(store, 0, ["a", "b"], weights={"a": 1.0, "b": 2.0}) == 1
    version, patterns = store.current_release()
    assert version == 1 == store.release_version()
    assert [(p.id, p.version) for p in patterns] == [("b", 1), ("a", 1)]  # stamped, by weight
    assert patterns[0] == msgspec.structs.replace(released("b", weight=2.0), version=1)
    assert _commit(store, 1, ["c"], ["a"]) == 2
    version, patterns = store.current_release()
    assert (version, sorted((p.id, p.version) for p in patterns)) == (2, [("b", 1), ("c", 2)])


def test_commit_on_a_stale_base_changes_nothing(store: Storage) -> None:
    assert _commit(store, 0, ["a"]) == 1
    assert _commit(store, 0, ["x"], ["a"]) is None
    assert _commit(store, 5, ["x"]) is None
    version, patterns = store.current_release()
    assert (version, [p.id for p in patterns]) == (1, ["a"])


def test_concurrent_commits_on_one_base_publish_once(open_store: OpenStore) -> None:
    stores = [open_store() for _ in range(4)]
    results: list[int | None] = []
    barrier = threading.Barrier(len(stores))

    def commit(i: int, s: Storage) -> None:
        barrier.wait()
        results.append(_commit(s, 0, [f"from-{i}"]))

    threads = [threading.Thread(target=commit, args=(i, s)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=lambda r: r or 0) == [None, None, None, 1]
    version, patterns = stores[0].current_release()
    assert version == 1
    assert len(patterns) == 1


def test_release_naming_an_id_twice_is_refused(store: Storage) -> None:
    with pytest.raises(InputError):
        _commit(store, 0, ["a", "a"])
    with pytest.raises(InputError, match="both"):
        _commit(store, 0, ["a"], ["a"])
    assert store.current_release() == (0, [])


def test_release_delta_orders_by_version_then_weight(store: Storage) -> None:
    _commit(store, 0, ["a", "b", "c"], weights={"a": 1.0, "b": 3.0, "c": 2.0})
    _commit(store, 1, ["d", "e"], weights={"d": 0.5, "e": 9.0})
    delta = store.release_delta(since_version=0, limit=100)
    assert delta.version == 2
    assert [(p.id, p.version) for p in delta.patterns] == [
        ("b", 1),
        ("c", 1),
        ("a", 1),
        ("e", 2),
        ("d", 2),
    ]
    assert [p.id for p in store.release_delta(since_version=1, limit=100).patterns] == ["e", "d"]
    current = store.release_delta(since_version=2, limit=100)
    assert (current.version, current.patterns, current.removed) == (2, [], [])


def test_release_delta_cursor_is_the_highest_complete_version(store: Storage) -> None:
    _commit(store, 0, ["a", "b"])
    _commit(store, 1, ["c", "d", "e"])
    _commit(store, 2, ["f"])
    cut = store.release_delta(since_version=0, limit=3)  # v1 whole, v2 partly
    assert cut.version == 1
    assert len(cut.patterns) == 3
    assert [p.version for p in cut.patterns] == [1, 1, 2]
    whole = store.release_delta(since_version=0, limit=5)  # v1 and v2 exactly
    assert (whole.version, len(whole.patterns)) == (2, 5)
    too_small = store.release_delta(since_version=1, limit=2)  # v2 alone does not fit
    assert too_small.version == 1
    assert [p.version for p in too_small.patterns] == [2, 2]
    # Following the cursor, a device that pulls with limit 3 ends with everything.
    seen: set[str] = set()
    cursor = 0
    while cursor < 3:
        delta = store.release_delta(since_version=cursor, limit=3)
        seen.update(p.id for p in delta.patterns)
        assert delta.version > cursor
        cursor = delta.version
    assert seen == {"a", "b", "c", "d", "e", "f"}
    with pytest.raises(InputError):
        store.release_delta(since_version=0, limit=0)


def test_release_delta_lists_removed_ids_within_the_cursor(store: Storage) -> None:
    _commit(store, 0, ["a", "b", "c"])
    _commit(store, 1, ["d"], ["a", "never-released"])
    _commit(store, 2, ["e", "f"], ["b"])
    _commit(store, 3, ["a"])  # re-released after its removal
    delta = store.release_delta(since_version=1, limit=100)
    assert delta.version == 4
    assert delta.removed == ["b"]  # a is live again; unknown ids are not tombstoned
    assert {p.id for p in delta.patterns} == {"d", "e", "f", "a"}
    cut = store.release_delta(since_version=1, limit=2)  # d (v2) fits, e/f (v3) do not
    assert (cut.version, cut.removed) == (2, [])
    assert store.release_delta(since_version=0, limit=100).removed == ["b"]
    version, patterns = store.current_release()
    assert (version, sorted(p.id for p in patterns)) == (4, ["a", "c", "d", "e", "f"])


def test_release_delta_carries_the_current_trends(store: Storage) -> None:
    trends = [Trend(cell=4, region="eu", score=2.5), Trend(cell=1, score=0.5)]
    _commit(store, 0, ["a"], trends=trends)
    delta = store.release_delta(since_version=1, limit=10)
    assert delta.trends == [
        Trend(cell=4, region="eu", score=2.5, version=1),
        Trend(cell=1, region="global", score=0.5, version=1),
    ]
    _commit(store, 1, ["b"], trends=[Trend(cell=9, score=1.0)])
    assert store.release_delta(since_version=0, limit=10).trends == [
        Trend(cell=9, score=1.0, version=2)
    ]


def test_current_trends_are_the_latest_release_s(store: Storage) -> None:
    assert store.current_trends() == []
    _commit(store, 0, ["a"], trends=[Trend(cell=4, region="eu", score=2.5)])
    _commit(store, 1, ["b"], trends=[Trend(cell=9, score=1.0), Trend(cell=2, score=0.5)])
    assert store.current_trends() == [
        Trend(cell=9, score=1.0, version=2),
        Trend(cell=2, score=0.5, version=2),
    ]
    assert store.current_trends() == store.release_delta(since_version=0, limit=1).trends


def test_stats_count_every_stage(store: Storage) -> None:
    for vid in ("v1", "v2"):
        viewer(store, vid)
    ingest(store, push("v1", "b1", added=[pattern("a"), pattern("b")]))
    ingest(store, push("v2", "b1", added=[pattern("a")]))
    store.apply_pending(worker_id="w", limit=2, now=10.0)
    ingest(store, push("v1", "b2", removed=["a"]))
    _commit(store, 0, ["x", "y", "z"])
    _commit(store, 1, [], ["z"])
    stats = store.stats()
    expected = StorageStats(
        viewers=2,
        pending_contributions=2,
        live_patterns=2,
        released_patterns=2,
        version=2,
        backend=stats.backend,
        capabilities=stats.capabilities,
    )
    assert stats == expected
