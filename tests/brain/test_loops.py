"""The brain's seven loops: what ``Brain.tick`` runs when, and what ``stats()`` says."""

from __future__ import annotations

import numpy as np

from omega.brain import LOOPS, Brain, BrainConfig
from omega.clock import ManualClock

HOUR = 3600.0
DAY = 24 * HOUR


def test_every_loop_is_named_with_its_scale_and_what_drives_it() -> None:
    scales = {loop.name: (loop.period_s, loop.driver) for loop in LOOPS}
    assert scales == {
        "reflexive": (0.1, "event"),
        "reactive": (5.0, "tick"),
        "adaptive": (1800.0, "sync"),
        "deliberative": (DAY, "tick"),
        "evolutionary": (7 * DAY, "tick"),
        "transformative": (365 * DAY, "constellation"),
        "transcendent": (3650 * DAY, "nothing"),
    }


def test_the_reactive_loop_ends_an_idle_session_and_only_an_idle_one(
    brain: Brain, clock: ManualClock
) -> None:
    brain.track_view("ani0", watch_fraction=1.0, completed=True)
    instant = brain.learner.tiers["instant"]
    clock.advance(HOUR)  # still within the session gap (2 h)
    assert brain.tick() == ["reactive"]
    assert instant.mass > 0
    clock.advance(1.5 * HOUR)
    assert brain.tick() == ["reactive"]
    assert instant.mass == 0  # the session is over: the next one starts afresh
    assert brain.loops()["reactive"]["last_ran"] == clock.now()


def test_the_slow_loops_run_on_the_clock_with_no_event_and_prune(
    brain: Brain, clock: ManualClock
) -> None:
    brain.track_view("ani0", watch_fraction=1.0, completed=True)  # the loops' clock starts
    brain.track_skip("cri0", at_seconds=5)  # a one-off pattern: stale in 30 days
    episodes = brain.store.count("episodes")
    clock.advance(DAY - 1)
    assert brain.tick() == ["reactive"]
    clock.advance(2)
    assert brain.tick() == ["reactive", "deliberative"]
    clock.advance(DAY)
    assert brain.tick() == ["reactive", "deliberative"]
    clock.advance(5 * DAY)  # a week since the clock started
    assert brain.tick() == ["reactive", "deliberative", "evolutionary"]
    patterns = len(brain.learner.bank)
    clock.advance(200 * DAY)  # past the pattern staleness and the episode retention
    assert brain.tick() == ["reactive", "deliberative", "evolutionary"]
    assert len(brain.learner.bank) < patterns
    assert brain.store.count("episodes") < episodes
    loops = brain.loops()
    assert loops["deliberative"]["last_ran"] == loops["evolutionary"]["last_ran"] == clock.now()


def test_the_loops_clock_survives_a_restart(brain: Brain, clock: ManualClock) -> None:
    """A TV restarted every 9 hours still consolidates daily (the clock's start is kept)."""
    directory = brain.directory
    brain.tick()  # the first look
    for _ in range(3):
        brain.close()
        clock.advance(9 * HOUR)
        brain = Brain.open(directory, clock=clock, config=BrainConfig(codebook_cells=6))
        ran = brain.tick()
    assert ran == ["reactive", "deliberative"]  # 27 h after the first look
    loops = brain.loops()
    assert loops["deliberative"]["last_ran"] == clock.now()
    brain.close()
    clock.advance(HOUR)
    reopened = Brain.open(directory, clock=clock, config=BrainConfig(codebook_cells=6))
    after = reopened.loops()
    assert after["deliberative"]["last_ran"] == loops["deliberative"]["last_ran"]
    assert after["reactive"]["last_ran"] is None  # kept in memory only
    reopened.close()


def test_stats_say_when_each_loop_last_ran(brain: Brain, clock: ManualClock) -> None:
    adopted = brain.loops()["transformative"]["last_ran"]
    assert adopted is not None  # the catalog's local codebook was adopted when imported
    brain.track_view("ani0", watch_fraction=1.0, completed=True)
    clock.advance(DAY)
    rng = np.random.default_rng(0)
    cells = rng.normal(size=(6, brain.catalog.matrix.shape[1])).astype(np.float32)
    brain.set_codebook(cells / np.linalg.norm(cells, axis=1, keepdims=True))
    loops = brain.stats()["loops"]
    assert isinstance(loops, dict)
    assert loops["transformative"]["last_ran"] == clock.now()  # new cells: relearned
    assert loops["reflexive"]["last_ran"] == clock.now() - DAY  # the last event
    assert loops["adaptive"]["last_ran"] is None  # never synced
    assert loops["transcendent"]["last_ran"] is None and loops["transcendent"]["driver"] == (
        "nothing"
    )
