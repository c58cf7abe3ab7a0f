"""Popularity on every backend: reports queued with their push (once), folded atomically,
the released list versioned and handed out by delta; the codebook keeps its item ids."""

from __future__ import annotations

import msgspec
from storage_records import OpenStore, ack_all, digest, push, viewer

from omega.protocol.messages import FrequencyReport, ItemScore
from omega.storage import Codebook, Storage
from omega.storage.base import SupportCounts

REPORTS = [
    FrequencyReport(seed=2**63 - 1, value=0, buckets=2982, epsilon=8.0),
    FrequencyReport(seed=7, value=2981, buckets=2982, epsilon=8.0),
]


def _push_with_reports(store: Storage, batch: str) -> None:
    p = msgspec.structs.replace(push("v1", batch), reports=REPORTS)
    store.ingest(p, digest=digest(p), region="eu", ack=ack_all(p), now=10.0)


def test_reports_are_queued_once_per_batch(store: Storage) -> None:
    viewer(store, "v1")
    _push_with_reports(store, "b1")
    _push_with_reports(store, "b1")  # a retry: the same batch, stored once
    queued = store.pending_reports(limit=10)
    assert [r for _, r in queued] == REPORTS
    assert store.pending_reports(limit=1) == queued[:1]


def test_fold_deletes_reports_and_saves_counts_atomically(open_store: OpenStore) -> None:
    store, other = open_store(), open_store()
    viewer(store, "v1")
    _push_with_reports(store, "b1")
    seqs = [s for s, _ in store.pending_reports(limit=10)]
    counts = SupportCounts("cb", 2982, 8.0, 2, (1).to_bytes(8, "little") * 3)
    assert store.fold_reports(seqs=seqs, counts=[counts])
    assert store.pending_reports(limit=10) == []
    assert other.popularity_counts(codebook_id="cb") == [counts]
    assert other.popularity_counts(codebook_id="other") == []
    # A second worker folding the same reports changes nothing.
    later = SupportCounts("cb", 2982, 8.0, 4, bytes(24))
    assert not other.fold_reports(seqs=seqs, counts=[later])
    assert store.popularity_counts(codebook_id="cb") == [counts]


def test_popular_list_is_versioned_with_the_release(store: Storage) -> None:
    first = [ItemScore(item_id="a", score=1.0), ItemScore(item_id="b", score=0.5)]
    base: dict[str, list[str]] = {"upserted": [], "removed": [], "trends": []}
    assert store.commit_release(base_version=0, now=1.0, popular=first, **base) == 1
    assert store.current_popular() == first
    assert store.release_delta(since_version=0, limit=10).popular == first
    assert store.release_delta(since_version=1, limit=10).popular == []
    change = [ItemScore(item_id="b", score=0.0), ItemScore(item_id="c", score=0.7)]
    assert store.commit_release(base_version=1, now=2.0, popular=change, **base) == 2
    now_listed = [first[0], change[1]]  # b left the list
    assert store.current_popular() == now_listed
    # A device behind gets the whole current list (not only what changed).
    assert store.release_delta(since_version=1, limit=10).popular == now_listed
    assert store.release_delta(since_version=0, limit=10).popular == now_listed
    assert store.commit_release(base_version=2, now=3.0, **base) == 3  # list unchanged
    assert store.release_delta(since_version=2, limit=10).popular == []


def test_codebook_keeps_its_item_ids(store: Storage) -> None:
    plain = Codebook("cb-a", 2, bytes(8), 2)
    store.put_codebook(plain)
    found = store.get_codebook()
    assert found is not None and found.item_ids == ()
    with_ids = Codebook("cb-b", 2, bytes(8), 2, ("1", "2", "x"))
    store.put_codebook(with_ids)
    again = store.get_codebook()
    assert again is not None and again.item_ids == ("1", "2", "x")


def test_a_delta_carries_at_most_the_pull_limit_of_popular_entries(store: Storage) -> None:
    many = [ItemScore(item_id=f"i{n:04d}", score=1.0 - n / 2000) for n in range(1001)]
    empty: dict[str, list[str]] = {"upserted": [], "removed": [], "trends": []}
    assert store.commit_release(base_version=0, now=1.0, popular=many, **empty) == 1
    assert store.release_delta(since_version=0, limit=10).popular == many[:1000]
