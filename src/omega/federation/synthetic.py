"""A synthetic fleet for benchmarks and robustness tests: viewers who share one taste.

The world: a codebook of K cells (random unit centroids, as k-means cells of a real
catalog would be well separated); a ground-truth *successor graph* where each cell a has a
few cells that succeed after it, with Zipf-skewed popularity; and a set of cells that
viewers abandon. Each viewer samples a handful of source cells by popularity and pushes
what a device would: recommendation patterns (a, b) along the graph, preference patterns
for the cells it likes, behaviour patterns for disliked cells it tried, in a context,
with success ~ Beta concentrated near 0.85 (≥ 0.7, as devices filter) and support of
3–40 episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omega.protocol import EMBEDDING_DIM
from omega.protocol.messages import Pattern, PatternContext, TaskType
from omega.storage.base import Codebook

__all__ = ["SyntheticViewer", "SyntheticWorld", "make_world"]

_CONTEXTS = (
    PatternContext(),
    PatternContext(time_bucket="evening"),
    PatternContext(time_bucket="evening", day_type="weekend"),
    PatternContext(time_bucket="morning", day_type="weekday"),
)


@dataclass(frozen=True, slots=True)
class SyntheticViewer:
    viewer_id: str
    region: str
    patterns: list[Pattern]


@dataclass(frozen=True, slots=True)
class SyntheticWorld:
    codebook: Codebook
    centroids: np.ndarray
    successors: dict[int, list[int]]  # ground truth: cells that succeed after each cell
    disliked: list[int]  # cells the fleet abandons
    viewers: list[SyntheticViewer]


def make_world(
    *,
    viewers: int,
    patterns_per_viewer: int,
    k: int = 512,
    dim: int = EMBEDDING_DIM,
    regions: tuple[str, ...] = ("eu", "us", "apac"),
    disliked: int = 8,
    seed: int = 0,
) -> SyntheticWorld:
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(k, dim)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    codebook = Codebook(
        codebook_id=f"synthetic-{k}-{seed}",
        dim=dim,
        centroids_f16=centroids.astype("<f2").tobytes(),
        k=k,
    )
    bad = [int(c) for c in rng.choice(k, size=disliked, replace=False)]
    good = np.setdiff1d(np.arange(k), bad)
    popularity = 1.0 / np.arange(1, len(good) + 1) ** 0.8
    popularity /= popularity.sum()
    good = rng.permutation(good)
    successors = {
        int(a): [int(b) for b in rng.choice(good, size=4, replace=False, p=popularity)]
        for a in good
    }
    fleet = [
        _viewer(rng, i, regions, good, popularity, successors, bad, patterns_per_viewer)
        for i in range(viewers)
    ]
    return SyntheticWorld(codebook, centroids, successors, bad, fleet)


def _viewer(
    rng: np.random.Generator,
    index: int,
    regions: tuple[str, ...],
    good: np.ndarray,
    popularity: np.ndarray,
    successors: dict[int, list[int]],
    bad: list[int],
    count: int,
) -> SyntheticViewer:
    context = _CONTEXTS[int(rng.integers(len(_CONTEXTS)))]
    sources = rng.choice(good, size=max(1, count // 3), replace=False, p=popularity)
    seen: set[tuple[str, tuple[int, ...]]] = set()
    patterns: list[Pattern] = []
    attempts = 0
    while len(patterns) < count and attempts < count * 20:
        attempts += 1
        a = int(sources[int(rng.integers(len(sources)))])
        task: TaskType
        cells: tuple[int, ...]
        roll = rng.random()
        if roll < 0.7:
            task, cells = "recommendation", (a, successors[a][int(rng.integers(4))])
        elif roll < 0.93:
            task, cells = "preference", (a,)
        else:
            task, cells = "behaviour", (bad[int(rng.integers(len(bad)))],)
        if (task, cells) in seen:
            continue
        seen.add((task, cells))
        success = float(np.clip(rng.beta(17, 3), 0.7, 1.0))
        patterns.append(
            Pattern(
                id=f"p{len(patterns)}",
                task=task,
                cells=cells,
                context=context,
                success_rate=round(1.0 - success if task == "behaviour" else success, 3),
                support=int(rng.integers(3, 41)),
            )
        )
    return SyntheticViewer(f"viewer-{index:06d}", regions[index % len(regions)], patterns)
