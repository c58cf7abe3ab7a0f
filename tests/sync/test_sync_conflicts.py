"""Conflict strategies: one verdict for every order and duplication of the same updates;
``merge`` is a commutative, associative, idempotent pooling; the brain combines its own
and the crowd's transitions with the configured strategy; pulled releases apply in any
order, any number of times, to the same collective tier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.brain.knowledge import CellKnowledge
from omega.brain.patterns import PatternStat
from omega.brain.store import BrainStore
from omega.errors import ConfigError
from omega.protocol.messages import ConsolidatedPattern
from omega.sync import STRATEGIES, Evidence, Ledger, check_strategy, resolve, resolve_updates

evidence = st.builds(
    Evidence,
    successes=st.integers(0, 50).map(float),
    trials=st.integers(0, 50).map(float),
    version=st.integers(0, 5),
    origin=st.sampled_from(["viewer", "omega"]),
).filter(lambda e: e.successes <= e.trials)
updates = st.lists(evidence, max_size=12)
ledgers = updates.map(Ledger.of)


@pytest.mark.parametrize("strategy", STRATEGIES)
@settings(max_examples=150, deadline=None)
@given(data=st.data(), items=updates)
def test_any_order_and_duplication_gives_one_verdict(
    strategy: str, data: st.DataObject, items: list[Evidence]
) -> None:
    name = check_strategy(strategy)
    expected = resolve_updates(items, name)
    duplicated = items + data.draw(
        st.lists(st.sampled_from(items), max_size=8) if items else st.just([])
    )
    shuffled = data.draw(st.permutations(duplicated))
    assert resolve_updates(shuffled, name) == expected


@settings(max_examples=150, deadline=None)
@given(a=ledgers, b=ledgers, c=ledgers)
def test_the_ledger_join_is_a_semilattice(a: Ledger, b: Ledger, c: Ledger) -> None:
    assert a.join(b) == b.join(a)
    assert a.join(b).join(c) == a.join(b.join(c))
    assert a.join(a) == a


@settings(max_examples=150, deadline=None)
@given(a=ledgers, b=ledgers, c=ledgers)
def test_merge_is_commutative_associative_idempotent(a: Ledger, b: Ledger, c: Ledger) -> None:
    def merged(x: Ledger) -> Evidence | None:
        return resolve(x, "merge")

    assert merged(a.join(b)) == merged(b.join(a))
    assert merged(a.join(b).join(c)) == merged(a.join(b.join(c)))
    assert merged(a.join(a)) == merged(a)


def test_each_strategy_decides_as_documented() -> None:
    mine = Evidence(successes=9, trials=10, version=2, origin="viewer")
    few = Evidence(successes=2, trials=2, version=1, origin="viewer")
    crowd = Evidence(successes=60, trials=100, version=7, origin="omega")
    both = Ledger.of([mine, crowd])
    assert resolve(both, "viewer-wins") == mine
    assert resolve(Ledger.of([few, crowd]), "viewer-wins") == crowd  # too little support
    assert resolve(both, "omega-wins") == crowd
    assert resolve(both, "quality-wins") == mine
    pooled = resolve(both, "merge")
    assert pooled is not None and pooled.rate == pytest.approx(69 / 110)
    assert resolve(Ledger(), "merge") is None
    assert resolve(Ledger.of([mine]), "omega-wins") == mine  # nobody else spoke
    # A stale, smaller update never replaces the newest one from the same origin.
    assert Ledger.of([mine, few]).viewer == mine
    with pytest.raises(ConfigError, match="unknown conflict strategy"):
        check_strategy("loudest-wins")


# -- the brain's transitions ------------------------------------------------------------
def _knowledge(strategy: str) -> CellKnowledge:
    knowledge = CellKnowledge(4, strategy=check_strategy(strategy), min_support=3)
    # The device: 0 → 1 at 9/10, 0 → 2 at 4/5, 0 → 3 at 2/2 (too few to stand alone).
    for b, successes, support in ((1, 9.0, 10), (2, 4.0, 5), (3, 2.0, 2)):
        key = ("recommendation", (0, b), "any", "any")
        knowledge.learn_local(PatternStat(key, successes, support))
    # The crowd: 0 → 1 weakly (0.5), 0 → 2 well (0.9), 0 → 3 (0.8).
    crowd = [
        ConsolidatedPattern(
            id=f"r{b}",
            task="recommendation",
            cells=(0, b),
            success_rate=rate,
            support=50,
            viewers=10,
            weight=1.0,
            version=1,
        )
        for b, rate in ((1, 0.5), (2, 0.9), (3, 0.8))
    ]
    knowledge.rebuild_collective(crowd, [])
    return knowledge


def test_merge_keeps_both_sides_as_before() -> None:
    crowd, local = _knowledge("merge").next_scores([(0, 1.0)])
    assert (crowd[1:] > 0).all()
    assert (local[1:] > 0).all()


def test_viewer_wins_drops_the_crowd_where_the_device_is_sure() -> None:
    crowd, local = _knowledge("viewer-wins").next_scores([(0, 1.0)])
    assert crowd[1] == 0 and crowd[2] == 0  # ≥ 3 episodes of our own: ours stands alone
    assert crowd[3] > 0  # 2 episodes are not enough to overrule the crowd
    assert (local[1:] > 0).all()


def test_omega_wins_drops_the_device_where_the_crowd_speaks() -> None:
    crowd, local = _knowledge("omega-wins").next_scores([(0, 1.0)])
    assert (local[1:] == 0).all()
    assert (crowd[1:] > 0).all()


def test_quality_wins_keeps_the_higher_rate_per_pair() -> None:
    knowledge = _knowledge("quality-wins")
    crowd, local = knowledge.next_scores([(0, 1.0)])
    assert local[1] > 0 and crowd[1] == 0  # ours 0.9 beats the crowd's 0.5
    assert crowd[2] > 0 and local[2] == 0  # the crowd's 0.9 beats our 0.8
    assert local[3] > 0 and crowd[3] == 0  # raw rate, however thin: 2/2 beats 0.8


def test_the_brain_config_selects_the_strategy(tmp_path: Path) -> None:
    from omega.brain import Brain, BrainConfig

    with Brain.open(tmp_path / "tv", config=BrainConfig(conflict_strategy="omega-wins")) as b:
        assert b.learner.knowledge.strategy == "omega-wins"


# -- releases in any order ------------------------------------------------------------------
def _release(version: int, rate: float, pid: str = "p") -> ConsolidatedPattern:
    return ConsolidatedPattern(
        id=pid,
        task="preference",
        cells=(1,),
        success_rate=rate,
        support=10,
        viewers=3,
        weight=1.0,
        version=version,
    )


@settings(max_examples=40, deadline=None)
@given(order=st.permutations([1, 2, 3, 3, 2]))
def test_pulled_releases_apply_in_any_order_to_the_same_state(
    tmp_path_factory: pytest.TempPathFactory, order: list[int]
) -> None:
    store = BrainStore(tmp_path_factory.mktemp("store") / "brain.db")
    try:
        for version in order:
            with store.transaction() as conn:
                store.releases.apply(conn, [_release(version, rate=version / 10)], [], [], [])
        patterns, _ = store.releases.load()
        assert [(p.version, p.success_rate) for p in patterns] == [(3, 0.3)]
    finally:
        store.close()


def test_merge_of_transition_arrays_matches_no_evidence_cost() -> None:
    merged = CellKnowledge(256)
    assert merged.local_next_evidence.size == 2  # a default brain carries no extra arrays
    assert np.shares_memory(merged.next_views()[0], merged.crowd_next)


@settings(max_examples=200, deadline=None)
@given(
    strategy=st.sampled_from(["viewer-wins", "omega-wins", "quality-wins"]),
    mine=st.tuples(st.integers(1, 20), st.integers(0, 20)).filter(lambda t: t[1] <= t[0]),
    theirs=st.tuples(st.integers(1, 20), st.integers(1, 20)).filter(lambda t: t[1] <= t[0]),
)
def test_the_brain_decides_each_pair_as_resolve_does(
    strategy: str, mine: tuple[int, int], theirs: tuple[int, int]
) -> None:
    name = check_strategy(strategy)
    (my_trials, my_hits), (their_trials, their_hits) = mine, theirs
    knowledge = CellKnowledge(2, strategy=name, min_support=3)
    stat = PatternStat(("recommendation", (0, 1), "any", "any"), float(my_hits), my_trials)
    knowledge.learn_local(stat)
    crowd = ConsolidatedPattern(
        id="r",
        task="recommendation",
        cells=(0, 1),
        success_rate=their_hits / their_trials,
        support=their_trials,
        viewers=5,
        weight=1.0,
        version=1,
    )
    knowledge.rebuild_collective([crowd], [])
    crowd_view, local_view = knowledge.next_views()
    verdict = resolve(
        Ledger.of(
            [
                Evidence(successes=my_hits, trials=my_trials, version=1, origin="viewer"),
                Evidence(successes=their_hits, trials=their_trials, version=1, origin="omega"),
            ]
        ),
        name,
        min_support=3,
    )
    assert verdict is not None
    # The side the strategy picks survives; the other is dropped (viewer-wins keeps a
    # device's thin evidence beside the crowd's rather than dropping it).
    assert (crowd_view[0, 1] > 0) == (verdict.origin == "omega")
    if name != "viewer-wins" and my_hits:
        assert (local_view[0, 1] > 0) == (verdict.origin == "viewer")
