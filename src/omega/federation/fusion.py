"""Robust fusion of many clusters' votes at once (one vote per viewer, weights clipped).

Votes arrive as flat arrays with a cluster index each; every rule is vectorised over
clusters (one sort for all of them), so a round fuses 100k votes in milliseconds.

- ``trimmed_mean`` (default): within each cluster sort the votes by value, drop
  ``floor(trim · n)`` votes at each end, take the weighted mean of the rest. With
  ``trim`` ≥ the faulty share on one side, faulty votes can move the result only within
  the range of the honest votes.
- ``median``: the weighted median (the smallest value where the cumulative weight reaches
  half the total; breakdown point 50% of the weight).
- ``weighted_mean``: Σ w·x / Σ w — not robust; kept for comparison.

Krum-style rules select whole updates and Bulyan needs n > 4f + 3 (faulty < 25%), so
neither can reach "33% faulty"; coordinate-wise trimmed mean / median can.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from omega.federation.config import FusionRule

__all__ = ["fuse_grouped"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def fuse_grouped(
    cluster: IntArray,
    values: FloatArray,
    weights: FloatArray,
    *,
    clusters: int,
    rule: FusionRule,
    trim: float = 0.25,
) -> FloatArray:
    """Fuse ``values`` per cluster (``cluster[i]`` in ``[0, clusters)``, every cluster
    non-empty); ``weights`` must be > 0. Returns one value per cluster."""
    order = np.lexsort((weights, values, cluster))  # ties: lighter votes trimmed first
    g = cluster[order]
    x = values[order]
    w = weights[order]
    counts = np.bincount(g, minlength=clusters)
    starts = np.cumsum(counts) - counts
    if rule == "median":
        cumulative = np.cumsum(w)
        before = np.concatenate(([0.0], cumulative))[starts]
        within = cumulative - before[g]
        half = (cumulative[starts + counts - 1] - before) / 2.0
        reached = np.where(within >= half[g] - 1e-12, np.arange(len(g)), len(g))
        first = np.minimum.reduceat(reached, starts)
        return x[first]
    keep = np.ones(len(g), dtype=bool)
    if rule == "trimmed_mean":
        rank = np.arange(len(g)) - starts[g]
        cut = np.floor(trim * counts).astype(np.int64)
        keep = (rank >= cut[g]) & (rank < (counts - cut)[g])
    total = np.bincount(g[keep], weights=w[keep], minlength=clusters)
    weighted = np.bincount(g[keep], weights=(w * x)[keep], minlength=clusters)
    return weighted / total
