"""A warm start maps the catalog's saved vectors instead of reading them from brain.db,
and falls back to brain.db whenever the saved copy is not the current one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omega.brain import Brain, BrainConfig, CatalogItem
from omega.clock import ManualClock


def _vector_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("vectors-*.f32.npy"))


def _reopen(brain: Brain, clock: ManualClock, config: BrainConfig) -> Brain:
    directory, embedder = brain.directory, brain.titles.embedder
    brain.close()
    return Brain.open(directory, clock=clock, config=config, embedder=embedder)


def test_reopening_maps_the_saved_vectors(
    brain: Brain, clock: ManualClock, config: BrainConfig
) -> None:
    before = np.array(brain.catalog.matrix)
    recs = [r.item_id for r in brain.recommend(5)]
    (saved,) = _vector_files(brain.directory)
    reopened = _reopen(brain, clock, config)
    try:
        matrix = reopened.catalog.matrix
        assert isinstance(matrix.base, np.memmap)  # mapped, not read and widened
        assert np.array_equal(matrix, before)
        assert [r.item_id for r in reopened.recommend(5)] == recs
        assert _vector_files(reopened.directory) == [saved]
    finally:
        reopened.close()


def test_a_catalog_change_replaces_the_saved_copy(brain: Brain) -> None:
    (old,) = _vector_files(brain.directory)
    vector = np.ones(384, dtype=np.float32)
    brain.upsert_items([CatalogItem(item_id="new", title="A new title", embedding=vector)])
    (new,) = _vector_files(brain.directory)
    assert new != old and not old.exists()
    saved = np.load(new)
    assert saved.shape == (len(brain.catalog), 384)
    assert np.array_equal(saved, brain.catalog.matrix)


def test_a_damaged_or_stale_copy_is_not_used(
    brain: Brain, clock: ManualClock, config: BrainConfig
) -> None:
    before = np.array(brain.catalog.matrix)
    (saved,) = _vector_files(brain.directory)
    directory = brain.directory
    brain.close()
    saved.write_bytes(saved.read_bytes()[:1000])  # truncated
    with Brain.open(directory, clock=clock, config=config) as reopened:
        assert not isinstance(reopened.catalog.matrix.base, np.memmap)
        assert np.array_equal(reopened.catalog.matrix, before)
    # The next open has a whole copy again; one saved at another version is ignored.
    (rewritten,) = _vector_files(directory)
    rewritten.rename(directory / "vectors-999.f32.npy")
    with Brain.open(directory, clock=clock, config=config) as reopened:
        assert np.array_equal(reopened.catalog.matrix, before)
    assert [p.name for p in _vector_files(directory)] == [rewritten.name]
