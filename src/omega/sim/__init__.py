"""Simulation and evaluation on real viewing logs: MovieLens loaders, the protocol, baselines."""

from __future__ import annotations

from omega.sim.baselines import (
    BASELINES,
    ALSScorer,
    ItemKNNScorer,
    PopularityScorer,
    TransitionScorer,
    baseline_report,
)
from omega.sim.datasets import Dataset, DatasetFormat, Item, load_dataset
from omega.sim.evaluation import (
    Scorer,
    Split,
    ViewerScorer,
    evaluate,
    holdout_ranks,
    rank_metrics,
    split,
)
from omega.sim.viewers import synthetic_dataset

__all__ = [
    "BASELINES",
    "ALSScorer",
    "Dataset",
    "DatasetFormat",
    "Item",
    "ItemKNNScorer",
    "PopularityScorer",
    "Scorer",
    "Split",
    "TransitionScorer",
    "ViewerScorer",
    "baseline_report",
    "evaluate",
    "holdout_ranks",
    "load_dataset",
    "rank_metrics",
    "split",
    "synthetic_dataset",
]
