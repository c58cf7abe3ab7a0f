"""Scorers backed by the optional ``implicit`` package (the ``als`` extra).

``implicit`` is imported only when one of these scorers is built, so the rest of
``omega.sim`` works without it. Its BLAS threadpool is limited to one thread while it
runs (``threadpoolctl``), which is what ``implicit`` asks for and what silences its
warning. Both models see the binary train matrix (one per watched item).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np

from omega.errors import ConfigError
from omega.sim.evaluation import FloatArray, IntArray, Split

__all__ = ["ALSScorer", "ItemKNNScorer"]

_INSTALL_HINT = "pip install exogenesis-omega[als]"


def _load(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"this baseline needs the optional 'implicit' package ({exc}); "
            f"install it with: {_INSTALL_HINT}"
        ) from None


def _single_blas_thread() -> Any:
    threadpoolctl = _load("threadpoolctl")
    return threadpoolctl.threadpool_limits(limits=1, user_api="blas")


class ItemKNNScorer:
    """Cosine item-kNN through ``implicit``'s item-item recommender, K neighbours per item.

    Score of item j for a viewer = Σ over the viewer's train items i of sim_K(i, j). This
    is exactly ``implicit.nearest_neighbours.CosineRecommender`` (same normalisation, same
    neighbour ties), except that the normalised matrix is converted to CSR here:
    ``CosineRecommender`` hands a COO matrix to its own ``fit``, and ``implicit`` warns.
    """

    def __init__(self, split: Split, *, k: int = 100, threads: int = 1) -> None:
        neighbours = _load("implicit.nearest_neighbours")
        self._user_items = split.train_matrix
        # CosineRecommender.fit, step by step: L2-normalise each item, then CSR.
        weighted = neighbours.normalize(self._user_items.T).T.tocsr()
        with _single_blas_thread():
            model = neighbours.ItemItemRecommender(K=k, num_threads=threads)
            model.fit(weighted, show_progress=False)
        self.similarity = model.similarity.tocsr()

    def score(self, viewers: IntArray) -> FloatArray:
        scores = self._user_items[viewers] @ self.similarity
        return np.asarray(scores.todense(), dtype=np.float64)


class ALSScorer:
    """Implicit-feedback ALS (``implicit.cpu.als``): score = user factors · item factors."""

    def __init__(
        self,
        split: Split,
        *,
        factors: int = 64,
        regularization: float = 0.05,
        iterations: int = 20,
        random_state: int = 0,
        threads: int = 1,
    ) -> None:
        als = _load("implicit.cpu.als")
        with _single_blas_thread():
            model = als.AlternatingLeastSquares(
                factors=factors,
                regularization=regularization,
                iterations=iterations,
                random_state=random_state,
                num_threads=threads,
            )
            model.fit(split.train_matrix, show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float64)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float64)

    def score(self, viewers: IntArray) -> FloatArray:
        scores: FloatArray = self.user_factors[viewers] @ self.item_factors.T
        return scores
