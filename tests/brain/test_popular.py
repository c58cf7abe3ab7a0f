"""The collective tier's popularity list: applied with a release, read per catalog row,
kept across restarts, and a schema-1 brain upgrades to hold it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from omega.brain import Brain
from omega.brain._migrations import migrations
from omega.clock import ManualClock
from omega.protocol.messages import ItemScore


def _row(brain: Brain, item_id: str) -> int:
    return brain.catalog.row_of_key[brain.catalog.key_of_id[item_id]]


def test_released_popularity_reaches_scoring_and_survives_a_restart(
    brain: Brain, tmp_path: Path, clock: ManualClock
) -> None:
    ids = brain.catalog.ids
    first, second = ids[0], ids[1]
    brain.sync.apply_release(
        version=3,
        patterns=[],
        removed=[],
        trends=[],
        popular=[
            ItemScore(item_id=first, score=1.0),
            ItemScore(item_id=second, score=0.4),
            ItemScore(item_id="not-in-this-catalog", score=0.9),
        ],
    )
    scores = brain.score_all()
    assert int(np.argmax(scores)) == _row(brain, first)
    recs = brain.recommend(2)
    assert recs[0].item_id == first and recs[0].signals["popular"] == 1.0
    brain.sync.apply_release(version=4, patterns=[], removed=[], trends=[])  # list unchanged
    assert int(np.argmax(brain.score_all())) == _row(brain, first)
    brain.sync.apply_release(  # a new list replaces the old one whole
        version=5,
        patterns=[],
        removed=[],
        trends=[],
        popular=[ItemScore(item_id=second, score=0.4)],
    )
    assert int(np.argmax(brain.score_all())) == _row(brain, second)
    brain.close()
    reopened = Brain.open(tmp_path / "tv", clock=clock)
    try:
        popular = reopened.learner.popular(reopened.catalog, reopened.store.releases)
        assert popular[_row(reopened, second)] == np.float32(0.4)
        assert popular[_row(reopened, first)] == 0.0
    finally:
        reopened.close()


def test_a_schema_one_brain_upgrades(tmp_path: Path) -> None:
    directory = tmp_path / "old"
    directory.mkdir()
    conn = sqlite3.connect(directory / "brain.db")
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at REAL NOT NULL)"
    )
    for statement in filter(str.strip, migrations()[0].sql.split(";")):
        conn.execute(statement)
    conn.execute("INSERT INTO schema_migrations VALUES (1, 'initial', 0)")
    conn.commit()
    conn.close()
    with Brain.open(directory) as brain:
        assert brain.store.schema_version == migrations()[-1].number
        assert brain.store.count("popular") == 0


def test_the_per_row_popularity_is_rebuilt_only_when_the_list_changes(brain: Brain) -> None:
    def popular() -> np.ndarray:
        return brain.learner.popular(brain.catalog, brain.store.releases)

    first = brain.catalog.ids[0]
    listed = [ItemScore(item_id=first, score=0.8)]
    brain.sync.apply_release(version=1, patterns=[], removed=[], trends=[], popular=listed)
    held = popular()
    assert held[_row(brain, first)] == np.float32(0.8)
    brain.sync.apply_release(version=2, patterns=[], removed=[], trends=[])  # no new list
    assert popular() is held
    brain.sync.forget_release()
    dropped = popular()
    assert dropped is not held and not dropped.any()
