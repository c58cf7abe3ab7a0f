from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.federation import fuse_grouped


def reference(values: list[float], weights: list[float], rule: str, trim: float) -> float:
    pairs = sorted(zip(values, weights, strict=True))
    if rule == "median":
        total = sum(w for _, w in pairs)
        running = 0.0
        for x, w in pairs:
            running += w
            if running >= total / 2 - 1e-12:
                return x
    if rule == "trimmed_mean":
        cut = math.floor(trim * len(pairs))
        pairs = pairs[cut : len(pairs) - cut]
    return sum(x * w for x, w in pairs) / sum(w for _, w in pairs)


groups = st.lists(
    st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(0.01, 50.0)), min_size=1, max_size=12),
    min_size=1,
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(groups, st.sampled_from(["trimmed_mean", "median", "weighted_mean"]))
def test_grouped_fusion_matches_per_cluster_reference(data, rule) -> None:
    cluster = np.array([g for g, votes in enumerate(data) for _ in votes], dtype=np.int64)
    values = np.array([x for votes in data for x, _ in votes])
    weights = np.array([w for votes in data for _, w in votes])
    order = np.random.default_rng(0).permutation(len(cluster))  # input order must not matter
    fused = fuse_grouped(
        cluster[order], values[order], weights[order], clusters=len(data), rule=rule, trim=0.25
    )
    for g, votes in enumerate(data):
        expected = reference([x for x, _ in votes], [w for _, w in votes], rule, 0.25)
        assert math.isclose(fused[g], expected, abs_tol=1e-9)


def test_trimmed_mean_ignores_a_third_of_extreme_votes() -> None:
    honest = [0.8, 0.82, 0.78, 0.81, 0.79, 0.8, 0.8, 0.83]
    values = np.array([*honest, 1.0, 1.0, 1.0, 1.0])  # 33% push 1.0
    weights = np.ones(len(values))
    cluster = np.zeros(len(values), dtype=np.int64)
    trimmed = fuse_grouped(cluster, values, weights, clusters=1, rule="trimmed_mean", trim=0.34)
    assert min(honest) <= trimmed[0] <= max(honest)
    mean = fuse_grouped(cluster, values, weights, clusters=1, rule="weighted_mean")
    assert mean[0] > max(honest)
