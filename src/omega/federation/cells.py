"""Content groups: codebook cells whose centroids are near-duplicates share one group.

Two patterns are similar when the cosine of their embeddings — the concatenation of their
cells' normalised centroids — is ≥ the threshold. For patterns with the same number of
cells that cosine is the *mean* of the per-position cell cosines, so grouping cells with
complete linkage at the same threshold (every pair inside a group has cosine ≥ threshold)
guarantees that patterns whose cells fall in the same groups are similar. Patterns are
then clustered by exact key (task, context, groups): no pairwise search over patterns at
all, and the cell grouping is computed once per codebook (K centroids, not N patterns).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from omega.errors import InputError
from omega.storage.base import Codebook

__all__ = ["MAX_CELLS", "CellGroups", "centroids_of", "group_cells"]

#: Largest codebook grouped (the brain's default is 256 cells).
MAX_CELLS = 8192


def centroids_of(codebook: Codebook) -> npt.NDArray[np.float32]:
    """The codebook's centroids as a (k, dim) float32 array."""
    expected = codebook.k * codebook.dim * 2
    if len(codebook.centroids_f16) != expected:
        raise InputError(
            f"codebook {codebook.codebook_id!r}: {len(codebook.centroids_f16)} bytes of "
            f"centroids, expected {expected} (k={codebook.k}, dim={codebook.dim}, f16)"
        )
    raw = np.frombuffer(codebook.centroids_f16, dtype="<f2")
    return raw.reshape(codebook.k, codebook.dim).astype(np.float32)


def group_cells(centroids: npt.NDArray[np.floating], threshold: float) -> npt.NDArray[np.int64]:
    """Map each cell to its group's canonical cell (the smallest cell index in the group).

    Complete-linkage agglomerative clustering (scipy) on cosine distance, cut at
    ``1 - threshold``: every two cells of a group have cosine ≥ ``threshold``. The
    canonical cell is stable for a given codebook, so cluster ids derived from it are
    stable from round to round.
    """
    k = len(centroids)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.isfinite(centroids).all():
        raise InputError("codebook centroids contain NaN or Inf")
    if k > MAX_CELLS:
        # Complete linkage needs the k×k distance matrix (8 bytes a pair).
        raise InputError(f"codebook has {k} cells; cell grouping supports up to {MAX_CELLS}")
    if k == 1:
        return np.zeros(1, dtype=np.int64)
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    unit = np.asarray(centroids, dtype=np.float64) / np.where(norms > 0, norms, 1.0)
    # Our own distance matrix (not pdist's "cosine") so an all-zero centroid is simply
    # far from everything instead of producing NaN.
    distance = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method="complete")
    labels = fcluster(tree, t=1.0 - threshold, criterion="distance")
    canonical = np.full(int(labels.max()) + 1, k, dtype=np.int64)
    np.minimum.at(canonical, labels, np.arange(k, dtype=np.int64))
    return np.asarray(canonical[labels], dtype=np.int64)


class CellGroups:
    """Remembers the grouping of the last codebook seen (it changes rarely; K² work)."""

    def __init__(self) -> None:
        self._key: tuple[str, float] | None = None
        self._groups: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)

    def for_codebook(self, codebook: Codebook, similarity: float) -> npt.NDArray[np.int64]:
        key = (codebook.codebook_id, similarity)
        if key != self._key:
            self._groups = group_cells(centroids_of(codebook), similarity)
            self._key = key
        return self._groups
