"""Popularity rounds: reports folded once into support counts, the top titles released
with the round, changes re-sent, titles that left the top sent once with score 0."""

from __future__ import annotations

import random

import msgspec
import numpy as np

from omega.federation import FederationConfig, run_round
from omega.federation.popularity import diff_popular, popular_scores
from omega.protocol.frequency import hash_items, make_report, support_counts
from omega.protocol.messages import ItemScore, PushAck, PushRequest
from omega.storage import Codebook, Storage, ViewerRecord
from omega.storage.base import SupportCounts

ITEMS = tuple(f"m{i}" for i in range(200))


def _push_reports(store: Storage, viewer: str, items: list[str], seed: int) -> None:
    rng = random.Random(seed)
    for n, item in enumerate(items):
        push = PushRequest(
            viewer_id=viewer,
            batch_id=f"{viewer}-{n}",
            codebook_id="cb",
            reports=[make_report(item, 4.0, rng)],
        )
        ack = PushAck(batch_id=push.batch_id)
        digest = msgspec.msgpack.encode(push).hex()[:64]
        store.ingest(push, digest=digest, region="eu", ack=ack, now=10.0)


def test_a_round_releases_the_estimated_top_titles(fed_store: Storage) -> None:
    fed_store.put_codebook(Codebook("cb", 2, bytes(8), 2, ITEMS))
    fed_store.create_viewer(ViewerRecord("v", "eu", "tv", 1.0))
    rng = random.Random(3)
    watched = rng.choices(ITEMS[:5], k=1500) + rng.choices(ITEMS, k=300)
    _push_reports(fed_store, "v", watched, seed=1)
    config = FederationConfig(popular_top=10)

    first = run_round(fed_store, config, now=100.0, worker_id="w")
    assert first.status == "released" and first.reports == 1800 and first.popular == 10
    assert fed_store.pending_reports(limit=10) == []
    top = fed_store.current_popular()
    assert {s.item_id for s in top[:5]} == set(ITEMS[:5])
    assert top[0].score == 1.0 and all(0 < s.score <= 1 for s in top)
    assert fed_store.release_delta(since_version=0, limit=10).popular == top

    again = run_round(fed_store, config, now=200.0, worker_id="w")
    assert again.status == "unchanged" and again.reports == 0  # nothing folded twice


def test_scores_and_diffs() -> None:
    assert popular_scores([], ITEMS, top=5) == []
    old = [ItemScore(item_id="a", score=1.0), ItemScore(item_id="b", score=0.5)]
    new = [ItemScore(item_id="a", score=0.98), ItemScore(item_id="c", score=0.6)]
    assert diff_popular(old, new, tolerance=0.05) == [
        ItemScore(item_id="c", score=0.6),
        ItemScore(item_id="b", score=0.0),
    ]


def test_titles_within_the_ldp_noise_are_shrunk_towards_zero() -> None:
    """1,000 reports over 20 watched titles: the 180 titles nobody watched, whose
    estimates are pure LDP noise, score little (before the shrinkage they averaged 0.24
    of the top title on this draw), and every watched title outscores all of them."""
    rng = random.Random(7)
    watched = [rng.choice(ITEMS[:20]) for _ in range(1000)]
    reports = [make_report(item, 4.0, rng) for item in watched]
    support = support_counts(hash_items(ITEMS), reports)
    counts = SupportCounts("cb", reports[0].buckets, 4.0, len(reports), support.tobytes())
    scores = {s.item_id: s.score for s in popular_scores([counts], ITEMS, top=200)}
    noise = [scores.get(i, 0.0) for i in ITEMS[20:]]
    assert set(ITEMS[:20]) <= set(scores)
    assert sum(noise) / len(noise) < 0.1
    assert min(scores[i] for i in ITEMS[:20]) > max(noise)


def test_one_inflated_title_does_not_squash_the_others() -> None:
    counts = np.zeros(len(ITEMS), dtype=np.int64)
    counts[:6] = [5000, 60, 50, 40, 30, 20]  # one title a coalition pushed far past the rest
    exact = SupportCounts("cb", 0, 4.0, int(counts.sum()), counts.astype("<i8").tobytes())
    scores = {s.item_id: s.score for s in popular_scores([exact], ITEMS, top=10)}
    assert scores[ITEMS[0]] == 1.0 and scores[ITEMS[1]] == 1.0  # capped at the 5th
    assert scores[ITEMS[4]] == 1.0 and scores[ITEMS[5]] < 1.0
    plain = {s.item_id: s.score for s in popular_scores([exact], ITEMS, top=10, reference=1)}
    assert plain[ITEMS[1]] < 0.5  # scaled by the inflated title, the honest top would shrink
