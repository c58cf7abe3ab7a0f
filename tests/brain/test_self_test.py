"""Self-tests: each title a household enjoys is ranked by every compared skill a moment
before the brain learns it, and the household's better weighting wins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from omega.brain import Brain, BrainConfig, ranking
from omega.brain.catalog import CatalogItem
from omega.brain.recommend import combine, signal_rows
from omega.brain.skills import SELF_TEST, SELF_TESTED, SKILLS
from omega.clock import ManualClock
from omega.protocol.messages import ItemScore

POPULAR = [f"doc{n}" for n in range(12)]  # documentaries, most popular first


def _release_popularity(brain: Brain) -> None:
    brain.sync.apply_release(
        version=1,
        patterns=[],
        removed=[],
        trends=[],
        popular=[ItemScore(item_id=i, score=1.0 - 0.05 * n) for n, i in enumerate(POPULAR)],
    )


def _watch(brain: Brain, clock: ManualClock, items: list[str]) -> None:
    for item in items:
        clock.advance(3 * 3600)
        brain.track_view(item, watch_fraction=1.0, completed=True)


def _tested(brain: Brain) -> dict[str, float]:
    return {n: brain.learner.skills.stats[(n, SELF_TEST)].success_rate for n in SELF_TESTED}


def test_a_household_that_watches_what_is_popular_keeps_the_crowd(
    brain: Brain, clock: ManualClock
) -> None:
    _release_popularity(brain)
    _watch(brain, clock, POPULAR[:8])
    mrr = _tested(brain)
    assert mrr["continue"] > mrr["personal"]
    assert brain.learner.skills.choose("evening/weekday").name == "continue"


UNGATED = BrainConfig(codebook_cells=6, flush_every=8, popular_pool=0)


@pytest.mark.parametrize("config", [UNGATED])  # popularity everywhere: it can mislead
def test_a_household_with_its_own_taste_drops_the_crowd(
    brain: Brain, clock: ManualClock, tmp_path: Path
) -> None:
    _release_popularity(brain)
    _watch(brain, clock, [f"cri{n}" for n in range(8)])
    mrr = _tested(brain)
    assert mrr["personal"] > mrr["continue"]
    assert brain.learner.skills.choose("evening/weekday").name == "personal"
    # The evidence is part of the brain's state: it survives a restart.
    brain.flush()
    brain.close()
    reopened = Brain.open(tmp_path / "tv", clock=clock)
    try:
        assert reopened.learner.skills.choose("evening/weekday").name == "personal"
        assert reopened.stats()["skills"]["personal"]["self_test_mrr"] == round(  # type: ignore[index]
            mrr["personal"], 4
        )
    finally:
        reopened.close()


#: The default gate is the household's top 100 titles: this catalog is smaller, so the
#: same gate here is its top 3 (~5 %).
GATED = BrainConfig(codebook_cells=6, flush_every=8, popular_pool=3)


@pytest.mark.parametrize("config", [GATED])
def test_gated_popularity_leaves_a_household_with_its_own_taste_alone(
    brain: Brain, clock: ManualClock
) -> None:
    # Popular documentaries are far from a crime household's titles: gated to its own
    # top titles they add nothing to its ranking, so dropping the crowd changes nothing.
    _release_popularity(brain)
    _watch(brain, clock, [f"cri{n}" for n in range(8)])
    mrr = _tested(brain)
    assert mrr["personal"] == mrr["continue"]


def test_no_self_test_for_skips_abandons_or_rewatches(brain: Brain, clock: ManualClock) -> None:
    _release_popularity(brain)
    brain.track_skip("cri0", at_seconds=30)
    brain.track_view("cri1", watch_fraction=0.1)  # abandoned: not a success
    assert all((n, SELF_TEST) not in brain.learner.skills.stats for n in SELF_TESTED)
    brain.track_view("cri2", watch_fraction=1.0, completed=True)
    uses = brain.learner.skills.stats[("continue", SELF_TEST)].uses
    clock.advance(3600)
    brain.track_view("cri2", watch_fraction=1.0, completed=True)  # a rewatch
    assert brain.learner.skills.stats[("continue", SELF_TEST)].uses == uses


def test_self_tests_can_be_turned_off(tmp_path: Path, clock: ManualClock, brain: Brain) -> None:
    quiet = Brain.open(
        tmp_path / "quiet", clock=clock, config=BrainConfig(codebook_cells=6, self_test_sample=0)
    )
    try:
        quiet.upsert_items(  # the same titles and vectors as the fixture's brain
            [
                CatalogItem(item_id=item_id, title=row.title, embedding=brain.catalog.matrix[i])
                for i, (item_id, row) in enumerate(
                    zip(brain.catalog.ids, brain.catalog.rows, strict=True)
                )
            ]
        )
        _release_popularity(quiet)
        _watch(quiet, clock, [f"cri{n}" for n in range(8)])
        assert all((n, SELF_TEST) not in quiet.learner.skills.stats for n in SELF_TESTED)
        assert quiet.learner.skills.choose("evening/weekday").name == "continue"
    finally:
        quiet.close()


def test_a_self_test_scores_as_every_signal_would(brain: Brain, clock: ManualClock) -> None:
    # A self-test computes only the signals its skills weigh: its scores keep every bit.
    _release_popularity(brain)
    _watch(brain, clock, [*POPULAR[:3], "cri0", "cri1"])
    every = brain._snapshot(clock.now(), None)
    tested = brain._snapshot(clock.now(), None, signals=ranking.SELF_TEST_SIGNALS)
    rows = np.arange(len(brain.catalog), dtype=np.int64)
    all_signals, all_penalty = signal_rows(brain.catalog, rows, every.state)
    signals, penalty = signal_rows(brain.catalog, rows, tested.state)
    assert set(signals) == ranking.SELF_TEST_SIGNALS < set(all_signals)
    assert "instant" not in tested.state.tiers
    for name in SELF_TESTED:
        full = combine(all_signals, all_penalty, SKILLS[name], gate=every.gate)
        assert combine(signals, penalty, SKILLS[name], gate=tested.gate).tobytes() == full.tobytes()
