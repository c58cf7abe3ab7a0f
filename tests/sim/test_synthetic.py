from __future__ import annotations

import numpy as np

from omega.sim.synthetic import SyntheticItem, clustered_vectors, synthetic_titles


def test_titles_are_deterministic_and_complete() -> None:
    a = synthetic_titles(300, seed=4)
    assert a == synthetic_titles(300, seed=4)
    assert a != synthetic_titles(300, seed=5)
    assert len(a) == 300
    assert len({item.item_id for item in a}) == 300
    assert synthetic_titles(0, seed=1) == []


def test_items_look_like_a_catalog() -> None:
    items = synthetic_titles(500, seed=0)
    assert all(isinstance(i, SyntheticItem) for i in items)
    assert all(i.title and i.description and i.genres for i in items)
    assert all(1950 <= i.year <= 2025 and 20 <= i.runtime_min <= 180 for i in items)
    assert len({i.genres[0] for i in items}) >= 8
    # Franchises: some titles are sequels or seasons of an earlier one.
    sequels = [i for i in items if any(m in i.title for m in (" 2", " II", "Season"))]
    assert len(sequels) > 20


def test_clustered_vectors_shape_and_determinism() -> None:
    v = clustered_vectors(1000, dim=32, clusters=20, seed=7)
    assert v.shape == (1000, 32)
    assert v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(v, clustered_vectors(1000, dim=32, clusters=20, seed=7))
    assert not np.array_equal(v, clustered_vectors(1000, dim=32, clusters=20, seed=8))
    assert clustered_vectors(0, seed=1).shape == (0, 384)


def test_clustered_vectors_have_structure() -> None:
    v = clustered_vectors(2000, seed=0)
    sims = v @ v.T
    np.fill_diagonal(sims, -1.0)
    nearest = np.median(sims.max(axis=1))
    typical = float(np.mean(sims[np.triu_indices(len(v), 1)]))
    assert nearest > 0.6  # near neighbours exist (franchises, niches)
    assert typical < 0.3  # but most pairs are unrelated
