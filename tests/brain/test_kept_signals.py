"""A redrawn screen scores its candidates once: the signals are kept while every input
they were scored from is unchanged, and scored afresh (to the same bits as a plain
scoring) after any change — an event, a release, a co-watch page, a new session."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from omega.brain import Brain, BrainConfig, SharedCatalog
from omega.brain.ranking import Snapshot
from omega.brain.recommend import candidate_rows, signal_rows
from omega.brain.sync_state import CATALOG_ORDER_CURSOR
from omega.clock import ManualClock
from omega.protocol.messages import ItemScore
from omega.sim.synthetic import clustered_vectors, synthetic_titles

TITLES = 4000  # above the whole-catalog limit: requests score candidates


@pytest.fixture
def brain(tmp_path: Path) -> Brain:
    titles = synthetic_titles(TITLES, seed=9)
    matrix = clustered_vectors(TITLES, seed=9)
    shared = SharedCatalog([t.catalog_item() for t in titles], matrix, matrix[::64])
    clock = ManualClock(1_700_000_000.0)
    opened = Brain.open(tmp_path / "tv", clock=clock, config=BrainConfig(), shared_catalog=shared)
    opened.sync.set_cursors({CATALOG_ORDER_CURSOR: json.dumps(shared.catalog.ids)})
    for i in range(6):
        clock.advance(600.0)
        opened.track_view(shared.catalog.ids[i * 7], watch_fraction=0.9)
    return opened


def _signals(brain: Brain) -> tuple[Snapshot, tuple[dict[str, np.ndarray], np.ndarray]]:
    snap = brain._snapshot(brain.clock.now(), None)
    assert snap.kept is not None
    rows = candidate_rows(snap.catalog, snap.state, snap.index, per_source=100)
    return snap, snap.kept.signal_rows(snap.catalog, rows, snap.state)


def _plain(snap: Snapshot) -> list[bytes]:
    rows = candidate_rows(snap.catalog, snap.state, snap.index, per_source=100)
    signals, penalty = signal_rows(snap.catalog, rows, snap.state)
    return [v.tobytes() for v in (*signals.values(), penalty)]


def _bits(kept: tuple[dict[str, np.ndarray], np.ndarray]) -> list[bytes]:
    return [v.tobytes() for v in (*kept[0].values(), kept[1])]


def test_signals_are_kept_until_an_input_changes(brain: Brain) -> None:
    ids = brain.catalog.ids
    changes = [
        lambda: brain.track_view(ids[101], watch_fraction=0.8),
        lambda: brain.sync.apply_release(
            version=1,
            patterns=[],
            removed=[],
            trends=[],
            popular=[ItemScore(item_id=ids[5], score=0.7)],
        ),
        lambda: brain.apply_cowatch(1, [(0, [(9, 40), (21, 12)]), (7, [(3, 30)])]),
        lambda: brain.end_session(),
        lambda: brain.track_skip(ids[202], at_seconds=20.0),
    ]
    try:
        snap, first = _signals(brain)
        for change in changes:
            again_snap, again = _signals(brain)
            assert again[0] is first[0]  # nothing changed: the same signals, not rescored
            assert _bits(again) == _plain(again_snap)
            change()
            before = first
            snap, first = _signals(brain)
            assert first[0] is not before[0]  # the change is seen
            assert _bits(first) == _plain(snap)  # scored afresh from what changed
        with pytest.raises(ValueError, match="read-only"):
            first[0]["recent"][0] = 1.0
    finally:
        brain.close()
