"""Ranking metrics of one held-out item per viewer, tie-fair: expectations over tie orders.

A viewer's held-out item has ``higher`` unseen items scoring strictly above it and
``tied`` others scoring the same. Broken uniformly at random, its 0-based rank ``r`` is
uniform over ``higher … higher + tied``; each metric here is its exact expectation, a
difference of prefix sums over ranks divided by ``tied + 1`` (no sampling):

- ``hr@k`` = P(r < k); ``recall@k`` is the same number (one relevant item per viewer).
- ``ndcg@k`` = E[1/log2(r + 2) · [r < k]] (the ideal DCG of one relevant item is 1).
- ``map@k`` = E[1/(r + 1) · [r < k]]: average precision truncated at k with one relevant
  item is the reciprocal rank (trec_eval's ``map_cut_k``).
- ``mrr`` = E[1/(r + 1)] over the whole ranking.

Beside them, ``*_pessimistic`` puts every tie above the held-out item (r = higher +
tied) and ``*_optimistic`` below it (r = higher: how the earlier tables counted, kept
for comparisons with them).

``*_se`` (for ``mrr``, ``hr@k`` and ``ndcg@k``) is the standard error of the tie-fair
mean over viewers, ``std(ddof=1) / √n``: how far the figure could move with another
draw of as many viewers (one held-out item each), not with another tie order. On
ml-latest-small (671 viewers) NDCG@10 ≈ 0.07 carries an SE of about 0.008, so two rows
closer than ~2 SE are not told apart by one run.

``coverage@k`` is the share of the catalog in at least one viewer's top k unseen items
(``TopKCoverage``); ties at the k-th place are broken uniformly at random with the run's
seed, so a scorer that ties everything covers the catalog at random, not by item index.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from omega.errors import InputError

__all__ = [
    "KS",
    "TopKCoverage",
    "expected_at",
    "paired_difference",
    "ranking_metrics",
    "reciprocal_ranks",
]

#: The cut-offs every row reports (report.json holds all; the tables show k = 10).
KS = (5, 10, 20)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def _checked(higher: IntArray, tied: IntArray) -> None:
    if higher.shape != tied.shape:
        raise InputError(f"higher {higher.shape} and tied {tied.shape} differ in shape")
    if (higher < 0).any() or (tied < 0).any():
        raise InputError("rank counts must be non-negative")


def expected_at(per_rank: FloatArray, higher: IntArray, tied: IntArray) -> FloatArray:
    """Per viewer, the mean of ``per_rank[r]`` over ranks ``higher … higher + tied``.

    ``per_rank`` gives the metric's value at ranks 0, 1, …; ranks past its end count 0
    (a cut-off at ``len(per_rank)``)."""
    _checked(higher, tied)
    prefix = np.concatenate([[0.0], np.cumsum(per_rank, dtype=np.float64)])
    end = per_rank.shape[0]
    low = np.minimum(higher, end)
    high = np.minimum(higher + tied + 1, end)
    means: FloatArray = (prefix[high] - prefix[low]) / (tied + 1).astype(np.float64)
    return means


def reciprocal_ranks(n: int) -> FloatArray:
    """1/(r + 1) for ranks r = 0 … n − 1."""
    values: FloatArray = 1.0 / np.arange(1, n + 1, dtype=np.float64)
    return values


def _per_rank(k: int) -> dict[str, FloatArray]:
    ranks = np.arange(k, dtype=np.float64)
    return {
        "hr": np.ones(k),
        "ndcg": 1.0 / np.log2(ranks + 2.0),
        "map": reciprocal_ranks(k),
    }


def ranking_metrics(
    higher: IntArray, tied: IntArray, *, ks: tuple[int, ...] = KS
) -> dict[str, float]:
    """Every metric of the module docstring, averaged over viewers (0.0 for no viewers).

    Keys: ``mrr`` and, for each k, ``hr@k``, ``recall@k``, ``ndcg@k``, ``map@k``; ``mrr``,
    ``hr@k`` and ``ndcg@k`` also with ``_pessimistic``, ``_optimistic`` and ``_se`` (the
    standard error of the tie-fair mean)."""
    _checked(higher, tied)
    zero = np.zeros_like(tied)
    worst = higher + tied
    longest = int(worst.max(initial=0)) + 1
    rr = reciprocal_ranks(longest)
    figures: dict[str, float] = {}
    figures["mrr"], figures["mrr_se"] = _mean_se(expected_at(rr, higher, tied))
    figures["mrr_pessimistic"] = _mean(expected_at(rr, worst, zero))
    figures["mrr_optimistic"] = _mean(expected_at(rr, higher, zero))
    for k in ks:
        for name, values in _per_rank(k).items():
            fair = expected_at(values, higher, tied)
            figures[f"{name}@{k}"] = _mean(fair)
            if name != "map":
                figures[f"{name}@{k}_se"] = _mean_se(fair)[1]
                figures[f"{name}@{k}_pessimistic"] = _mean(expected_at(values, worst, zero))
                figures[f"{name}@{k}_optimistic"] = _mean(expected_at(values, higher, zero))
        figures[f"recall@{k}"] = figures[f"hr@{k}"]
    return figures


def _mean(values: FloatArray) -> float:
    return float(values.mean()) if values.size else 0.0


def paired_difference(ours: FloatArray, theirs: FloatArray) -> tuple[float, float]:
    """The mean of ``ours − theirs`` over the same viewers (one value each, in the same
    order) and its standard error: two rows measured on the same held-out items differ
    by less noise than their own standard errors suggest, since a viewer easy for one is
    mostly easy for the other."""
    if ours.shape != theirs.shape:
        raise InputError(f"paired figures differ in shape: {ours.shape} and {theirs.shape}")
    return _mean_se(ours - theirs)


def _mean_se(values: FloatArray) -> tuple[float, float]:
    """The mean and its standard error (0.0 with fewer than two values)."""
    if values.size < 2:
        return _mean(values), 0.0
    return _mean(values), float(values.std(ddof=1) / np.sqrt(values.size))


class TopKCoverage:
    """Which catalog items reach some viewer's top k, batch after batch of score rows.

    Rows arrive with seen items already at −inf; −inf items never count as recommended.
    Among items tied at the k-th score, the ones kept are drawn uniformly at random
    (``seed``), so the figure does not depend on item order.
    """

    def __init__(self, n_items: int, *, ks: tuple[int, ...] = KS, seed: int = 0) -> None:
        self.ks = tuple(sorted(ks))
        self._covered = {k: np.zeros(n_items, dtype=bool) for k in self.ks}
        self._rng = np.random.default_rng(seed)

    def add(self, scores: FloatArray) -> None:
        """Count the top-k items of each row of ``scores`` (viewers × items)."""
        if scores.shape[0] == 0:
            return
        n = scores.shape[1]
        order = _top_rows(scores, self._rng.random(scores.shape), min(max(self.ks), n))
        rows = np.arange(scores.shape[0])[:, None]
        for k in self.ks:
            top = order[:, : min(k, n)]
            finite = np.isfinite(scores[rows, top])
            self._covered[k][top[finite]] = True

    def figures(self) -> dict[str, float]:
        """``coverage@k`` for each k: the share of the catalog covered."""
        return {
            f"coverage@{k}": float(covered.mean()) if covered.size else 0.0
            for k, covered in self._covered.items()
        }


def _top_rows(scores: FloatArray, jitter: FloatArray, k: int) -> IntArray:
    """Each row's ``k`` best columns in order, ties in random (``jitter``) order.

    The k-th best score is the threshold: every item above it is in, and the items tied
    at it take the remaining places by their jitter (a full sort of 10⁴ columns per
    viewer would cost more than the scoring)."""
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
    above = scores > kth
    at = scores == kth
    # Smallest keys first: every item above the threshold (−1), then the tied ones by
    # jitter in [0, 1), never the rest (2).
    key = np.where(above, -1.0, np.where(at, jitter, 2.0))
    chosen = np.argpartition(key, k - 1, axis=1)[:, :k]
    rows = np.arange(scores.shape[0])[:, None]
    # Order the chosen k by (−score, jitter): a k × k sort per row.
    picked_scores = scores[rows, chosen]
    picked_jitter = jitter[rows, chosen]
    inner = np.lexsort((picked_jitter, -picked_scores), axis=1)
    result: IntArray = chosen[rows, inner]
    return result
