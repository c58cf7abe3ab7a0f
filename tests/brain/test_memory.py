from __future__ import annotations

import numpy as np

from omega.brain import Brain
from omega.clock import ManualClock

HOUR = 3600.0
DAY = 24 * HOUR


def test_tiers_decay_at_their_own_time_scales(brain: Brain, clock: ManualClock) -> None:
    brain.track_view("ani0", watch_fraction=1.0, completed=True)
    start = {
        n: brain.learner.tiers[n].strength(clock.now()) for n in ("instant", "episodic", "semantic")
    }
    assert all(v > 0.5 for v in start.values())

    clock.advance(HOUR)  # two instant half-lives, a sliver of the others
    now = clock.now()
    assert brain.learner.tiers["instant"].strength(now) < 0.3 * start["instant"]
    assert brain.learner.tiers["episodic"].strength(now) > 0.95 * start["episodic"]

    clock.advance(4 * DAY)  # two episodic half-lives
    now = clock.now()
    assert brain.learner.tiers["episodic"].strength(now) < 0.3 * start["episodic"]
    assert brain.learner.tiers["semantic"].strength(now) > 0.9 * start["semantic"]
    assert brain.learner.tiers["evolutionary"].strength(now) > brain.learner.tiers[
        "semantic"
    ].strength(now)


def test_tiers_point_towards_what_was_enjoyed(brain: Brain) -> None:
    for item in ("cri0", "cri1", "cri2"):
        brain.track_view(item, watch_fraction=1.0, completed=True)
    taste = brain.learner.tiers["semantic"].direction(brain.clock.now())
    assert taste is not None
    crime = brain.catalog.matrix[brain.catalog.row_of_key[brain.titles.key("cri5")]]
    cartoon = brain.catalog.matrix[brain.catalog.row_of_key[brain.titles.key("ani5")]]
    assert float(taste @ crime) > float(taste @ cartoon)


def test_session_end_clears_only_the_instant_tier(brain: Brain, clock: ManualClock) -> None:
    brain.track_view("doc0", watch_fraction=1.0)
    brain.end_session()
    now = clock.now()
    assert brain.learner.tiers["instant"].strength(now) == 0.0
    assert brain.learner.tiers["episodic"].strength(now) > 0.5


def test_state_survives_reopen(brain: Brain, clock: ManualClock, tmp_path: object) -> None:
    for n in range(12):
        clock.advance(HOUR)
        brain.track_view(f"ani{n}", watch_fraction=0.9, completed=True)
    brain.track_skip("cri0", at_seconds=10)
    before = brain.stats()
    taste = brain.learner.tiers["semantic"].vector.copy()
    recs = [r.item_id for r in brain.recommend(5)]
    directory = brain.directory
    brain.close()

    reopened = Brain.open(
        directory, clock=clock, config=brain.config, embedder=brain.titles.embedder
    )
    try:
        after = reopened.stats()
        for key in ("items", "episodes", "patterns", "shareable_patterns", "codebook_id"):
            assert after[key] == before[key], key
        assert np.allclose(reopened.learner.tiers["semantic"].vector, taste, atol=1e-5)
        assert [r.item_id for r in reopened.recommend(5)] == recs
    finally:
        reopened.close()


def test_consolidation_runs_on_schedule(brain: Brain, clock: ManualClock) -> None:
    """Daily: stale one-off patterns go. Weekly: episodes past the retention go."""
    from dataclasses import replace

    brain.config = replace(brain.config, episode_retention=3 * DAY)
    brain.track_view("doc0", watch_fraction=0.5)  # one episode: a one-off pattern
    one_offs = {s.id for s in brain.learner.bank if s.support == 1}
    assert one_offs
    clock.advance(40 * DAY)  # stale (> 30 days) and past the retention
    brain.track_view("ani0", watch_fraction=1.0)  # the next event runs the due loops
    assert not one_offs & {s.id for s in brain.learner.bank}
    assert brain.stats()["episodes"] == 1  # the 40-day-old episode was pruned


def test_a_tiers_direction_is_its_vector_made_unit_after_every_change() -> None:
    """The unit vector a tier keeps between requests is, after whatever changed the
    tier, the one worked out afresh from its vector (bit for bit), and read-only."""
    from omega.brain.config import TierHalfLives
    from omega.brain.tiers import TIERS, MemoryTiers

    rng = np.random.default_rng(0)
    tiers = MemoryTiers(8, TierHalfLives())
    now = 1_700_000_000.0

    def check() -> None:
        for name in TIERS:
            tier = tiers[name]
            got = tier.direction(now)
            norm = np.float32(np.sqrt(float(tier.vector @ tier.vector)))
            if got is None:
                assert tier.strength(now) <= 1e-3 or norm <= 1e-9
                continue
            assert got.tobytes() == (tier.vector / norm).tobytes()
            assert tier.direction(now) is got  # kept while nothing changes
            assert not got.flags.writeable

    for step in range(30):
        now += float(rng.integers(60, 3 * 3600))
        tiers.observe(rng.normal(size=8).astype(np.float32), float(rng.random()), now)
        check()
        if step % 7 == 3:
            tiers.end_session(now)
            check()
        if step % 5 == 2:
            tiers.set_collective(rng.normal(size=8).astype(np.float32), 2.0, now)
            check()
        if step % 9 == 4:
            tiers.load("semantic", rng.normal(size=8).astype(np.float32), 1.5, now)
            check()
