"""Centralised reference recommenders, each a ``Scorer`` fitted on the train split only.

- ``PopularityScorer``: number of train interactions per item.
- ``TransitionScorer``: co-watch transitions. Every viewer's train sequence (protocol
  order) adds one count to ``adj[a, b]`` and ``adj[b, a]`` for each consecutive pair; a
  viewer's score is the sum of the adjacency rows of their last 5 train items.
- ``cowatch`` / ``cowatch_k3``: co-watch within a window of steps, forward plus
  half-weight backward, the viewer's last titles with position decay, normalised by the
  source title's degree; ``cowatch_k3`` keeps only the ordered pairs ≥ 3 distinct viewers
  contributed (``omega.sim.cowatch`` states the rule and holds the tuned defaults).
- ``ItemKNNScorer`` / ``ALSScorer``: ``implicit``'s cosine item-kNN and ALS (see
  ``omega.sim._implicit``).

Ties: the scores are returned as they are; ``evaluate`` reports the tie-fair expectation
as the headline. ``TransitionScorer(..., popularity_tie_break=True)`` adds
``popularity / (max_popularity + 1)`` (< 1) to its integer counts instead, so equal counts
are ordered by popularity. On ml-latest-small the integer counts tie a lot: NDCG@10 is
0.0694 with ties won (DESIGN.md's first reference), 0.0539 tie-fair, 0.0470 with ties
lost, 0.0530 with popularity tie-break.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from omega.errors import ConfigError
from omega.sim._implicit import ALSScorer, ItemKNNScorer
from omega.sim.cowatch import TUNED, TUNED_K3, CowatchScorer
from omega.sim.datasets import Dataset, load_dataset
from omega.sim.evaluation import (
    FloatArray,
    IntArray,
    Scorer,
    Split,
    evaluate,
    split,
    validation_dataset,
)

__all__ = [
    "BASELINES",
    "ALSScorer",
    "ItemKNNScorer",
    "PopularityScorer",
    "TransitionScorer",
    "baseline_report",
]


def _popularity(split: Split) -> FloatArray:
    return np.bincount(split.train_items, minlength=split.n_items).astype(np.float64)


def _tie_break(popularity: FloatArray) -> FloatArray:
    scaled: FloatArray = popularity / (popularity.max(initial=0.0) + 1.0)
    return scaled


class PopularityScorer:
    """Items ranked by how often they were watched in train, the same list for everyone."""

    def __init__(self, split: Split) -> None:
        self.popularity = _popularity(split)

    def score(self, viewers: IntArray) -> FloatArray:
        return np.broadcast_to(self.popularity, (viewers.shape[0], self.popularity.shape[0]))


class TransitionScorer:
    """Items watched right before or after any of the viewer's last ``window`` train items."""

    def __init__(
        self, split: Split, *, window: int = 5, popularity_tie_break: bool = False
    ) -> None:
        if window < 1:
            raise ConfigError(f"window must be at least 1, got {window}")
        n = split.n_items
        items = split.train_items
        # Consecutive pairs inside each viewer's sequence, never across two viewers.
        boundary = np.zeros(items.shape[0], dtype=bool)
        last = split.train_indptr[1:] - 1
        boundary[last[last >= 0]] = True
        within = ~boundary[:-1]
        src, dst = items[:-1][within], items[1:][within]
        ones = np.ones(src.shape[0] * 2, dtype=np.float64)
        pairs = (np.concatenate([src, dst]), np.concatenate([dst, src]))
        self.adjacency = sp.csr_matrix((ones, pairs), shape=(n, n))  # duplicates are summed
        self.tie_break = _tie_break(_popularity(split)) if popularity_tie_break else np.zeros(n)
        self._split = split
        self.window = window

    def score(self, viewers: IntArray) -> FloatArray:
        indptr = self._split.train_indptr
        ends = indptr[viewers + 1]
        starts = np.maximum(indptr[viewers], ends - self.window)
        lengths = ends - starts
        rows = np.repeat(np.arange(viewers.shape[0]), lengths)
        positions = np.repeat(ends - lengths.cumsum(), lengths) + np.arange(lengths.sum())
        recent = sp.csr_matrix(
            (np.ones(rows.shape[0]), (rows, self._split.train_items[positions])),
            shape=(viewers.shape[0], self._split.n_items),
        )
        counts = np.asarray((recent @ self.adjacency).todense(), dtype=np.float64)
        return counts + self.tie_break


Factory = Callable[[Split, int], Scorer]

BASELINES: dict[str, Factory] = {
    "popularity": lambda s, seed: PopularityScorer(s),
    "item_knn": lambda s, seed: ItemKNNScorer(s),
    "als": lambda s, seed: ALSScorer(s, random_state=seed),
    "transitions": lambda s, seed: TransitionScorer(s),
    "cowatch": lambda s, seed: CowatchScorer(s, TUNED),
    "cowatch_k3": lambda s, seed: CowatchScorer(s, TUNED_K3),
}


def baseline_report(
    dataset_path: str | Path | Dataset,
    *,
    seed: int = 0,
    names: Sequence[str] = tuple(BASELINES),
    validation: bool = False,
) -> dict[str, Any]:
    """Load (unless given a ``Dataset``), split and evaluate the named baselines: figures
    plus fit/eval seconds.

    ``validation``: hold out each viewer's second-to-last interaction (the last dropped),
    for tuning. ``item_knn`` and ``als`` need the optional ``implicit`` package
    (``ConfigError`` if it is missing); pass ``names=("popularity", "transitions")`` to
    run without it.
    """
    unknown = [name for name in names if name not in BASELINES]
    if unknown:
        raise ConfigError(f"unknown baseline(s) {unknown}; choose from {sorted(BASELINES)}")
    started = time.perf_counter()
    dataset = dataset_path if isinstance(dataset_path, Dataset) else load_dataset(dataset_path)
    data = split(validation_dataset(dataset) if validation else dataset)
    load_s = time.perf_counter() - started
    results: dict[str, dict[str, float | int]] = {}
    for name in names:
        t0 = time.perf_counter()
        scorer = BASELINES[name](data, seed)
        t1 = time.perf_counter()
        figures = evaluate(data, scorer, seed=seed)
        t2 = time.perf_counter()
        results[name] = {**figures, "fit_s": t1 - t0, "eval_s": t2 - t1}
    return {
        "dataset": str(dataset.path),
        "format": dataset.format,
        "viewers": dataset.n_users,
        "items": dataset.n_items,
        "events": dataset.n_ratings,
        "seed": seed,
        "holdout": "second-to-last (validation)" if validation else "last",
        "baselines": results,
        "load_s": load_s,
        "wall_s": time.perf_counter() - started,
    }
