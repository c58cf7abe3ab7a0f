"""The release plan: what a round would publish, computed from plain values (no storage)."""

from __future__ import annotations

import numpy as np
from _fed_helpers import NOW, codebook, live

from omega.federation import FederationConfig, RoundInputs, plan_release

CONFIG = FederationConfig()
GROUPS = np.arange(16, dtype=np.int64)  # orthogonal cells: every cell its own group


def inputs(patterns: list, **changes: object) -> RoundInputs:
    values: dict[str, object] = {
        "codebook": codebook(),
        "live": patterns,
        "base_version": 3,
        "current": [],
        "current_trends": [],
        "popularity": [],
        "current_popular": [],
    }
    return RoundInputs(**(values | changes))  # type: ignore[arg-type]


def fleet(viewers: int = 4) -> list:
    return [p for i in range(viewers) for p in (live(f"v{i}", (1, 2)), live(f"v{i}", (3,)))]


def test_a_new_consensus_is_planned_as_upserts_on_the_base_version() -> None:
    plan = plan_release(inputs(fleet()), GROUPS, CONFIG, now=NOW + 10)
    assert plan.changed
    assert plan.base_version == 3
    assert sorted(p.cells for p in plan.upserted) == [(1, 2), (3,)]
    assert plan.upserted == plan.patterns
    assert (plan.removed, plan.popular) == ([], [])
    assert plan.stats.released == 2


def test_planning_against_the_same_release_changes_nothing() -> None:
    first = plan_release(inputs(fleet()), GROUPS, CONFIG, now=NOW + 10)
    again = plan_release(
        inputs(fleet(), current=first.patterns, current_trends=first.trends),
        GROUPS,
        CONFIG,
        now=NOW + 10,
    )
    assert not again.changed
    assert (again.upserted, again.removed, again.trends_changed) == ([], [], False)
    assert again.patterns == first.patterns


def test_clusters_that_lost_consensus_are_planned_as_removals() -> None:
    first = plan_release(inputs(fleet()), GROUPS, CONFIG, now=NOW + 10)
    fewer = [p for p in fleet() if p.pattern.cells == (3,)]
    plan = plan_release(inputs(fewer, current=first.patterns), GROUPS, CONFIG, now=NOW + 10)
    (gone,) = [p.id for p in first.patterns if p.cells == (1, 2)]
    assert plan.changed
    assert plan.removed == [gone]
    assert plan.upserted == []
