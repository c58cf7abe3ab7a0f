from __future__ import annotations

import numpy as np
import pytest

from omega.errors import InputError
from omega.federation import group_cells
from omega.federation.cells import CellGroups, centroids_of
from omega.storage.base import Codebook


def test_near_duplicates_group_and_every_pair_is_similar() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=(40, 32))
    near = base[:10] + 0.1 * rng.normal(size=(10, 32))  # cos ≈ 0.99 with its twin
    centroids = np.vstack([base, near])
    groups = group_cells(centroids, 0.8)
    for i in range(10):
        assert groups[40 + i] == groups[i] == min(i, 40 + i)
    unit = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
    for g in np.unique(groups):
        members = unit[groups == g]
        assert (members @ members.T >= 0.8 - 1e-9).all()  # complete linkage


def test_zero_centroid_is_its_own_group_and_nan_is_refused() -> None:
    centroids = np.eye(4)
    centroids[2] = 0.0
    assert list(group_cells(centroids, 0.8)) == [0, 1, 2, 3]
    centroids[1, 0] = np.nan
    with pytest.raises(InputError):
        group_cells(centroids, 0.8)


def test_codebook_bytes_are_checked_and_cached() -> None:
    centroids = np.eye(3, dtype="<f2")
    codebook = Codebook("cb", dim=3, centroids_f16=centroids.tobytes(), k=3)
    assert np.array_equal(centroids_of(codebook), np.eye(3))
    cache = CellGroups()
    assert cache.for_codebook(codebook, 0.8) is cache.for_codebook(codebook, 0.8)
    with pytest.raises(InputError):
        centroids_of(Codebook("cb", dim=3, centroids_f16=b"\x00" * 5, k=3))
