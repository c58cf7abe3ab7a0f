"""The evaluation protocol of DESIGN.md, exactly.

- Each viewer's interactions are ordered by (timestamp, item id as a number); the last
  one is held out and everything before it is the train split.
- A ``Scorer`` scores **all** items for a batch of viewers; items the viewer interacted
  with in train are excluded (set to −inf here, whatever the scorer returned), the
  held-out item never is. ``holdout_counts`` gives, per viewer, how many remaining items
  score strictly higher than the held-out one and how many tie with it — the one rule
  every row of every table uses (baselines, Omega's fleet, local-only).
- Ties count fairly: the headline figures (``hr@10``, ``ndcg@10``, MRR, MAP@k,
  Recall@k; ``omega.sim.metrics``) are expectations under uniformly random
  tie-breaking; ``*_pessimistic`` puts every tie above the held-out item and
  ``*_optimistic`` below it. The optimistic rule (rank = strictly higher items) is how
  DESIGN.md's first reference table was computed (this module reproduces its popularity,
  item-kNN and transitions rows to four decimals with it); it flatters scorers with
  coarse scores (integer co-watch counts; a constant scorer would get NDCG 1).
- ``coverage@k``: the share of the catalog in some viewer's top k (ties at the k-th
  place broken at random with the run's seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Protocol

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from omega.errors import InputError
from omega.sim.datasets import Dataset
from omega.sim.metrics import KS, TopKCoverage, expected_at, ranking_metrics

__all__ = [
    "K",
    "Scorer",
    "Split",
    "ViewerScorer",
    "evaluate",
    "expected_gains",
    "holdout_counts",
    "holdout_ranks",
    "rank_metrics",
    "split",
    "validation_dataset",
    "viewer_subsample",
]

K = 10
_BATCH = 256

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Split:
    """Train sequences in protocol order (CSR-style) plus one held-out item per viewer.

    Viewer ``u``'s train items are ``train_items[train_indptr[u]:train_indptr[u + 1]]``,
    oldest first; ``holdout[u]`` is the item index held out. Viewers are the dataset's
    users (each has at least one rating, so each has a held-out item).
    """

    dataset: Dataset
    train_indptr: IntArray
    train_items: IntArray
    train_ratings: npt.NDArray[np.float32]
    train_timestamps: IntArray
    holdout: IntArray
    holdout_timestamp: IntArray = field(repr=False)

    @property
    def n_viewers(self) -> int:
        return int(self.holdout.shape[0])

    @property
    def n_items(self) -> int:
        return self.dataset.n_items

    def train_sequence(self, viewer: int) -> IntArray:
        """The viewer's train items, oldest first."""
        return self.train_items[self.train_indptr[viewer] : self.train_indptr[viewer + 1]]

    def train_history(self, viewer: int) -> tuple[IntArray, npt.NDArray[np.float32], IntArray]:
        """The viewer's train (items, ratings, timestamps), in protocol order: what to replay."""
        window = slice(self.train_indptr[viewer], self.train_indptr[viewer + 1])
        return self.train_items[window], self.train_ratings[window], self.train_timestamps[window]

    @cached_property
    def train_matrix(self) -> sp.csr_matrix:
        """Binary viewers × items matrix of train interactions (float32)."""
        rows = np.repeat(np.arange(self.n_viewers), np.diff(self.train_indptr))
        data = np.ones(rows.shape[0], dtype=np.float32)
        matrix = sp.csr_matrix(
            (data, (rows, self.train_items)), shape=(self.n_viewers, self.n_items)
        )
        matrix.data[:] = 1.0  # a re-rated item counts once
        matrix.sort_indices()
        return matrix


def _protocol_order(dataset: Dataset) -> npt.NDArray[np.int64]:
    """Rating rows by viewer, then (timestamp, numeric item id): the protocol's order."""
    keys = dataset.item_keys[dataset.items_idx]
    # lexsort: the last key is the primary one.
    order: npt.NDArray[np.int64] = np.lexsort((keys, dataset.timestamps, dataset.users))
    return order


def validation_dataset(dataset: Dataset) -> Dataset:
    """The log without each viewer's last interaction (the test item), for tuning.

    Splitting it holds out each viewer's *second-to-last* interaction, so settings chosen
    on it never see the item the reported figures are measured on. A viewer with a
    single interaction keeps it (there is nothing earlier to hold out), so for such a
    viewer the validation item *is* the test item; MovieLens has none (≥ 20 ratings
    each)."""
    order = _protocol_order(dataset)
    counts = np.bincount(dataset.users, minlength=dataset.n_users)
    last = np.cumsum(counts) - 1
    keep = np.ones(dataset.n_ratings, dtype=bool)
    keep[order[last[counts >= 2]]] = False
    return replace(
        dataset,
        users=dataset.users[keep],
        items_idx=dataset.items_idx[keep],
        ratings=dataset.ratings[keep],
        timestamps=dataset.timestamps[keep],
    )


def viewer_subsample(dataset: Dataset, share: float, *, seed: int = 0) -> Dataset:
    """The log of a random ``share`` of the viewers (``int(n · share)``, at least one,
    drawn with ``seed``), renumbered in their original order: the same catalog, a
    differently shaped fleet."""
    if not 0.0 < share <= 1.0:
        raise InputError(f"viewer share must be in (0, 1], got {share}")
    rng = np.random.default_rng(seed)
    kept = np.sort(rng.choice(dataset.n_users, max(1, int(dataset.n_users * share)), replace=False))
    renumber = np.full(dataset.n_users, -1, dtype=np.int32)
    renumber[kept] = np.arange(kept.shape[0], dtype=np.int32)
    rows = renumber[dataset.users] >= 0
    user_ids = tuple(dataset.user_ids[int(u)] for u in kept)
    return replace(
        dataset,
        users=renumber[dataset.users[rows]],
        items_idx=dataset.items_idx[rows],
        ratings=dataset.ratings[rows],
        timestamps=dataset.timestamps[rows],
        user_ids=user_ids,
        user_index={user: u for u, user in enumerate(user_ids)},
    )


def split(dataset: Dataset) -> Split:
    """Hold out each viewer's last interaction in (timestamp, numeric item id) order."""
    order = _protocol_order(dataset)
    users = dataset.users[order]
    counts = np.bincount(users, minlength=dataset.n_users)
    ends = np.cumsum(counts)
    last = ends - 1  # position (in ``order``) of each viewer's held-out interaction
    keep = np.ones(order.shape[0], dtype=bool)
    keep[last] = False
    train = order[keep]
    indptr = np.zeros(dataset.n_users + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(counts - 1)
    return Split(
        dataset=dataset,
        train_indptr=indptr,
        train_items=dataset.items_idx[train].astype(np.int64),
        train_ratings=dataset.ratings[train],
        train_timestamps=dataset.timestamps[train],
        holdout=dataset.items_idx[order[last]].astype(np.int64),
        holdout_timestamp=dataset.timestamps[order[last]],
    )


class Scorer(Protocol):
    """Scores every item for a batch of viewers, trained on the train split only."""

    def score(self, viewers: IntArray) -> FloatArray:
        """A (len(viewers), n_items) array; higher is better, −inf excludes an item."""
        ...


class ViewerScorer:
    """Adapts a one-viewer function ``score(viewer) -> scores over all items`` to ``Scorer``."""

    def __init__(self, score_one: Callable[[int], npt.ArrayLike]) -> None:
        self._score_one = score_one

    def score(self, viewers: IntArray) -> FloatArray:
        rows = [np.asarray(self._score_one(int(v)), dtype=np.float64) for v in viewers]
        return np.stack(rows) if rows else np.empty((0, 0), dtype=np.float64)


def rank_metrics(ranks: IntArray, k: int = K) -> tuple[float, float]:
    """(HR@k, NDCG@k) averaged over 0-based ranks of one relevant item each."""
    if ranks.size == 0:
        return 0.0, 0.0
    hits = ranks < k
    gains = np.where(hits, 1.0 / np.log2(ranks.astype(np.float64) + 2.0), 0.0)
    return float(hits.mean()), float(gains.mean())


def expected_gains(higher: IntArray, tied: IntArray, k: int = K) -> tuple[FloatArray, FloatArray]:
    """Per viewer, the expected (hit@k, NDCG@k gain) under uniformly random tie-breaking.

    ``higher[i]`` items score strictly above viewer ``i``'s held-out item and ``tied[i]``
    others score the same, so its rank is uniform over ``higher … higher + tied``; the
    expectation is a difference of prefix sums over ranks (exact, no sampling).
    """
    ranks = np.arange(k, dtype=np.float64)
    hits = expected_at(np.ones(k), higher, tied)
    gains = expected_at(1.0 / np.log2(ranks + 2.0), higher, tied)
    return hits, gains


def holdout_counts(
    split: Split,
    scorer: Scorer,
    *,
    viewers: IntArray | None = None,
    coverage: TopKCoverage | None = None,
    batch: int = _BATCH,
) -> tuple[IntArray, IntArray]:
    """Per viewer (all, or ``viewers`` in that order): (items scoring strictly higher than
    the held-out one, items tying with it), among the items not seen in train.

    ``coverage``, if given, also counts each viewer's top-k items."""
    chosen = np.arange(split.n_viewers, dtype=np.int64) if viewers is None else viewers
    higher = np.empty(chosen.shape[0], dtype=np.int64)
    tied = np.empty(chosen.shape[0], dtype=np.int64)
    for start in range(0, chosen.shape[0], batch):
        part = slice(start, start + batch)
        scores = _masked_scores(split, scorer, chosen[part])
        rows = np.arange(scores.shape[0])
        target_items = split.holdout[chosen[part]]
        target = scores[rows, target_items].copy()
        if coverage is not None:
            coverage.add(scores)
        # The held-out item itself (even if re-watched) is the one being ranked.
        scores[rows, target_items] = np.nan
        higher[part] = (scores > target[:, None]).sum(axis=1)
        tied[part] = (scores == target[:, None]).sum(axis=1)
    return higher, tied


def _masked_scores(split: Split, scorer: Scorer, viewers: IntArray) -> FloatArray:
    """The scorer's rows for ``viewers``, checked, train items at −inf except the held-out
    item (which keeps its score even when the viewer re-watched it)."""
    scores = np.array(scorer.score(viewers), dtype=np.float64)  # a copy we may edit
    if scores.shape != (viewers.shape[0], split.n_items):
        raise InputError(
            f"scorer returned shape {scores.shape}, expected {(viewers.shape[0], split.n_items)}"
        )
    if np.isnan(scores).any():
        raise InputError("scorer returned NaN scores")
    rows = np.arange(viewers.shape[0])
    target_items = split.holdout[viewers]
    target = scores[rows, target_items].copy()
    seen = split.train_matrix[viewers]
    scores[np.repeat(rows, np.diff(seen.indptr)), seen.indices] = -np.inf
    scores[rows, target_items] = target
    return scores


def holdout_ranks(
    split: Split, scorer: Scorer, *, batch: int = _BATCH
) -> tuple[IntArray, IntArray]:
    """The held-out item's 0-based rank among unseen items: (ties won, ties lost)."""
    higher, tied = holdout_counts(split, scorer, batch=batch)
    return higher, higher + tied


def evaluate(
    split: Split,
    scorer: Scorer,
    *,
    viewers: IntArray | None = None,
    seed: int = 0,
    ks: tuple[int, ...] = KS,
    coverage: bool = True,
    gains: list[FloatArray] | None = None,
) -> dict[str, float | int]:
    """Every figure of ``omega.sim.metrics`` for ``scorer`` on ``split`` (all viewers, or
    ``viewers``): ``hr@k``, ``ndcg@k``, ``map@k``, ``recall@k``, ``mrr`` (tie-fair), their
    ``_pessimistic`` / ``_optimistic`` sides and ``_se``, ``coverage@k`` (ties at the k-th
    place broken with ``seed``; left out with ``coverage=False``) and ``viewers``.

    ``gains``, if given, receives each viewer's tie-fair NDCG@10 (in ``viewers`` order):
    what :func:`~omega.sim.metrics.paired_difference` compares two rows with."""
    cover = TopKCoverage(split.n_items, ks=ks, seed=seed) if coverage else None
    higher, tied = holdout_counts(split, scorer, viewers=viewers, coverage=cover)
    if gains is not None:
        gains.append(expected_gains(higher, tied, K)[1])
    figures: dict[str, float | int] = dict(ranking_metrics(higher, tied, ks=ks))
    if cover is not None:
        figures.update(cover.figures())
    figures["viewers"] = int(higher.shape[0])
    return figures
