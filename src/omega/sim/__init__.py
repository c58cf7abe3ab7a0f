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
from omega.sim.cowatch import CowatchScorer, CowatchSettings, cowatch_counts, keep_backed
from omega.sim.datasets import Dataset, DatasetFormat, Item, load_dataset
from omega.sim.evaluation import (
    Scorer,
    Split,
    ViewerScorer,
    evaluate,
    holdout_counts,
    holdout_ranks,
    rank_metrics,
    split,
    viewer_subsample,
)
from omega.sim.metrics import ranking_metrics
from omega.sim.viewers import synthetic_dataset

__all__ = [
    "BASELINES",
    "ALSScorer",
    "CowatchScorer",
    "CowatchSettings",
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
    "cowatch_counts",
    "evaluate",
    "holdout_counts",
    "holdout_ranks",
    "keep_backed",
    "load_dataset",
    "rank_metrics",
    "ranking_metrics",
    "split",
    "synthetic_dataset",
    "viewer_subsample",
]
