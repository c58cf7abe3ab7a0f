from __future__ import annotations

import random

import numpy as np
import pytest
from _fed_helpers import NOW, live, orthogonal_centroids

from omega.federation import FederationConfig, consolidate
from omega.protocol.messages import PatternContext

CENTROIDS = orthogonal_centroids(16)
CONFIG = FederationConfig()


def run(patterns, config=CONFIG, centroids=CENTROIDS):
    return consolidate(patterns, centroids, config, now=NOW, codebook_id="cb")


def test_three_viewers_release_a_transition_two_do_not() -> None:
    two = [live(f"v{i}", (1, 2)) for i in range(2)]
    assert run(two) == []
    three = [*two, live("v2", (1, 2), success=0.8, support=20)]
    (released,) = run(three)
    assert released.task == "recommendation"
    assert released.cells == (1, 2)
    assert released.viewers == 3
    assert 0.8 <= released.success_rate <= 0.9
    assert released.support == 40  # per-viewer mean 13.3 (nothing trimmed from 3) x 3


def test_quality_filter_positive_and_behaviour() -> None:
    low = [live(f"v{i}", (3,), success=0.69) for i in range(5)]
    assert run(low) == []
    # Behaviour describes abandonment: kept when success ≤ 1 - min_quality.
    abandon = [live(f"v{i}", (4,), task="behaviour", success=0.1) for i in range(3)]
    (released,) = run(abandon)
    assert released.task == "behaviour"
    assert released.weight > 0
    not_abandoned = [live(f"v{i}", (4,), task="behaviour", success=0.5) for i in range(3)]
    assert run(not_abandoned) == []


def test_one_vote_per_viewer_per_cluster() -> None:
    # One viewer with many patterns in one cluster cannot reach consensus alone...
    spam = [live("v0", (1, 2), pid=f"p{i}") for i in range(10)]
    spam += [live("v1", (1, 2))]
    assert run(spam) == []
    # ...and counts once once others back the cluster.
    (released,) = run([*spam, live("v2", (1, 2))])
    assert released.viewers == 3


def test_support_is_clipped_per_viewer() -> None:
    honest = [live(f"v{i}", (1, 2), success=0.75, support=10) for i in range(4)]
    mean = FederationConfig(fusion="weighted_mean")
    at_cap = run([*honest, live("v9", (1, 2), success=1.0, support=CONFIG.support_cap)], mean)
    loud = run([*honest, live("v9", (1, 2), success=1.0, support=10**9)], mean)
    # Past the cap, more claimed support buys nothing: (4·7.5·0.75 + 50·1) / (30 + 50).
    assert loud == at_cap
    assert loud[0].success_rate == pytest.approx((30 * 0.75 + 50) / 80, abs=1e-4)
    assert loud[0].support <= 5 * CONFIG.support_cap


def test_dissent_from_abandoners_blocks_release() -> None:
    backers = [live(f"v{i}", (5,)) for i in range(3)]
    two_quit = [live(f"q{i}", (5,), task="behaviour", success=0.1) for i in range(2)]
    # agreement 3 / 5 = 60% < 66%
    assert [p.task for p in run([*backers, *two_quit])] == []
    one_quit = two_quit[:1]
    # agreement 3 / 4 = 75%; the behaviour pattern alone has 1 backer: not released
    assert [p.task for p in run([*backers, *one_quit])] == ["preference"]


def test_dissent_counts_in_every_context() -> None:
    backers = [live(f"v{i}", (5,)) for i in range(3)]
    evening = PatternContext(time_bucket="evening")
    quitters = [
        live(f"q{i}", (5,), task="behaviour", success=0.1, context=evening) for i in range(5)
    ]
    # 3 like cell 5, 5 abandon it (in the evening): neither side reaches 66%.
    assert run([*backers, *quitters]) == []
    # The abandonment is released once it is the 66% view.
    (released,) = run([*backers[:2], *quitters])
    assert released.task == "behaviour"


def test_agreement_counts_everyone_who_likes_the_target() -> None:
    # Only 3 viewers back the transition 1 → 2, but 10 more like cell 2 after other
    # cells; 5 abandon cell 2: agreement (3 + 10) / 18 = 72%.
    backers = [live(f"v{i}", (1, 2)) for i in range(3)]
    others = [live(f"o{i}", (3 + i % 4, 2)) for i in range(10)]
    quitters = [live(f"q{i}", (2,), task="behaviour", success=0.1) for i in range(5)]
    released = run([*backers, *others, *quitters])
    assert (1, 2) in [p.cells for p in released]
    assert "behaviour" not in [p.task for p in released]


def test_ids_are_deterministic_and_order_free() -> None:
    patterns = [live(f"v{i}", (1, 2)) for i in range(3)] + [live(f"v{i}", (7,)) for i in range(4)]
    first = run(patterns)
    shuffled = patterns[:]
    random.Random(3).shuffle(shuffled)
    assert run(shuffled) == first
    assert len({p.id for p in first}) == 2
    # Another support value changes the numbers, not the id.
    changed = [live(f"v{i}", (1, 2), support=30) for i in range(3)]
    assert {p.id for p in run(changed)} <= {p.id for p in first}


def test_similar_cells_share_a_cluster() -> None:
    centroids = orthogonal_centroids(8).astype(np.float64)
    centroids[3] = 0.95 * centroids[2] + 0.1 * centroids[4]  # cos(2, 3) ≈ 0.99
    backers = [live("v0", (1, 2)), live("v1", (1, 3)), live("v2", (1, 2))]
    (released,) = run(backers, centroids=centroids)
    assert released.viewers == 3
    assert released.cells == (1, 2)  # the cell most viewers named
    assert run(backers, centroids=orthogonal_centroids(8)) == []


def test_stale_and_malformed_patterns_are_ignored() -> None:
    old = NOW - CONFIG.max_age_s - 1
    stale = [live(f"v{i}", (1, 2), updated_at=old) for i in range(3)]
    assert run(stale) == []
    bad = [
        live("v0", (1, 99)),  # cell out of range
        live("v1", (1,), task="recommendation"),  # wrong arity
        live("v2", (1, 2), success=float("nan")),
        live("v3", (1, 2), support=0),
    ]
    assert run([*bad, live("v4", (1, 2)), live("v5", (1, 2))]) == []


def test_weight_grows_with_viewers_and_saturates() -> None:
    config = FederationConfig(viewers_saturation=10)
    weights = []
    for n in (3, 6, 10, 40):
        (p,) = run([live(f"v{i}", (1, 2), success=0.9) for i in range(n)], config=config)
        weights.append(p.weight)
    assert weights[0] < weights[1] < weights[2]
    assert weights[2] == weights[3] == pytest.approx(0.9)


def test_behaviour_rate_conventions_agree() -> None:
    as_success = [live(f"v{i}", (4,), task="behaviour", success=0.1 + i / 100) for i in range(3)]
    as_abandonment = [
        live(f"v{i}", (4,), task="behaviour", success=0.9 - i / 100) for i in range(3)
    ]
    abandonment = FederationConfig(behaviour_rate="abandonment")
    (a,) = run(as_success)
    (b,) = run(as_abandonment, config=abandonment)
    assert a.id == b.id
    assert a.weight == b.weight
    assert a.success_rate == pytest.approx(1 - b.success_rate)  # each in its own convention
    assert run(as_abandonment) == []  # read as "succeeds 90%": not an abandonment
