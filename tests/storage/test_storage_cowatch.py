"""The co-watch store's contract, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from storage_records import OpenStore, viewer

from omega.errors import InputError, ViewerRevokedError
from omega.federation.cowatch import Ranking
from omega.protocol.cowatch import Share
from omega.storage import Storage
from omega.storage.cowatch import OprfOverBudget, StoredPair


def _read_at_two(tag: bytes, shares: list[Share], known: StoredPair | None) -> StoredPair | None:
    """A stand-in for the threshold: a tag is read once two distinct points exist."""
    xs = {s.x for s in shares}
    return StoredPair(tag[0], tag[1], 7, len(xs)) if len(xs) >= 2 else None


#: Every pair, best first (counts this small are quantised to themselves).
_rank = Ranking(200)


def _point(x: int) -> Share:
    return Share(x, x * 3, b"c" * 24)


def _points(start: int, stop: int) -> list[bytes]:
    """Stand-ins for blinded points (the store keeps only their digests)."""
    return [bytes([i]) * 32 for i in range(start, stop)]


def test_keys_are_made_once_and_kept(open_store: OpenStore) -> None:
    first, second = open_store(), open_store()
    keys = first.cowatch.keys()
    assert len(keys.oprf_key) == 32 and len(keys.hpke_key) == 32
    assert second.cowatch.keys() == keys


def test_the_oprf_bound_is_per_viewer_and_epoch(store: Storage) -> None:
    cowatch = store.cowatch
    viewer(store, "v1")
    viewer(store, "v2")
    assert cowatch.charge_oprf("v1", epoch=5, points=_points(0, 3), bound=4) == 1
    with pytest.raises(OprfOverBudget, match="1 left, 2 asked"):
        cowatch.charge_oprf("v1", epoch=5, points=_points(3, 5), bound=4)
    # nothing was charged
    assert cowatch.charge_oprf("v1", epoch=5, points=_points(3, 4), bound=4) == 0
    assert cowatch.charge_oprf("v2", epoch=5, points=_points(0, 4), bound=4) == 0
    assert cowatch.charge_oprf("v1", epoch=6, points=_points(0, 4), bound=4) == 0


def test_a_retried_evaluation_is_charged_once(store: Storage) -> None:
    """The same points again in the same epoch (a retry whose answer was lost) cost
    nothing; in the next epoch they are new."""
    cowatch = store.cowatch
    viewer(store, "v1")
    assert cowatch.charge_oprf("v1", epoch=5, points=_points(0, 3), bound=4) == 1
    assert cowatch.charge_oprf("v1", epoch=5, points=_points(0, 3), bound=4) == 1
    assert cowatch.charge_oprf("v1", epoch=5, points=_points(2, 4), bound=4) == 0
    with pytest.raises(OprfOverBudget, match="0 left, 1 asked"):
        cowatch.charge_oprf("v1", epoch=5, points=_points(0, 5), bound=4)
    assert cowatch.charge_oprf("v1", epoch=6, points=_points(0, 3), bound=4) == 1


def test_only_a_viewer_in_good_standing_may_evaluate(store: Storage) -> None:
    with pytest.raises(InputError, match="not registered"):
        store.cowatch.charge_oprf("ghost", epoch=1, points=_points(0, 1), bound=4)
    viewer(store, "v1")
    store.revoke_viewer("v1", now=10.0)
    with pytest.raises(ViewerRevokedError):
        store.cowatch.charge_oprf("v1", epoch=1, points=_points(0, 1), bound=4)


def test_a_tag_is_released_at_the_threshold_and_a_batch_may_come_twice(store: Storage) -> None:
    cowatch = store.cowatch
    tag = bytes([3, 7]) + bytes(14)
    one = cowatch.fold([(tag, _point(1))], resolve=_read_at_two, rank=_rank, now=1.0)
    assert (one.stored, one.pairs, one.rows, one.version) == (1, 0, 0, 0)
    assert cowatch.pending_tags() == 1 and cowatch.rows_after(version=0, source=-1, limit=9) == []
    batch = [(tag, _point(1)), (tag, _point(2))]
    two = cowatch.fold(batch, resolve=_read_at_two, rank=_rank, now=2.0)
    assert (two.stored, two.pairs, two.rows, two.version) == (1, 1, 1, 1)
    again = cowatch.fold(batch, resolve=_read_at_two, rank=_rank, now=3.0)
    assert (again.stored, again.pairs, again.rows, again.version) == (0, 0, 0, 1)
    [row] = cowatch.rows_after(version=0, source=-1, limit=9)
    assert (row.version, row.source, row.neighbours) == (1, 3, [(7, 2)])
    assert cowatch.pending_tags() == 0 and cowatch.version() == 1


def test_rows_page_in_version_then_source_order(store: Storage) -> None:
    cowatch = store.cowatch
    for version, sources in enumerate(([5, 1, 9], [1, 4]), start=1):
        batch = [
            (bytes([s, n]) + bytes(14), _point(x))
            for s in sources
            for n in (20 + version,)
            for x in (1, 2)
        ]
        assert cowatch.fold(batch, resolve=_read_at_two, rank=_rank, now=0.0).version == version
    rows = cowatch.rows_after(version=0, source=-1, limit=10)
    assert [(r.version, r.source) for r in rows] == [(1, 5), (1, 9), (2, 1), (2, 4)]
    assert rows[2].neighbours == [(21, 2), (22, 2)]  # source 1 re-released with both
    page = cowatch.rows_after(version=1, source=5, limit=2)
    assert [(r.version, r.source) for r in page] == [(1, 9), (2, 1)]
