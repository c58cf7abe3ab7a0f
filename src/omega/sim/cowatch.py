"""Co-watch within a window of steps: the table, its k-viewers filter, and its scorer.

The rule, exactly (the brain's co-watch scoring and the private release mirror it):

1. **Pairs.** In one viewer's sequence (protocol order, oldest first) every title ``a`` at
   step ``i`` and title ``b`` at step ``j`` with ``0 < d = j − i ≤ window`` and ``b ≠ a``
   form the ordered pair ``a → b``, of weight ``d ** −distance_exponent`` (1 for every
   pair at exponent 0). A viewer contributes each ordered pair **at most once**, with the
   weight of its closest occurrence (``viewer_pairs``).
2. **Table.** ``cowatch_counts`` sums the viewers' weights: ``F[a, b]``; at exponent 0 it
   is how many distinct viewers contributed ``a → b`` (the *support*).
   ``keep_backed(F, support, k)`` keeps only the pairs whose support is ≥ k (what a
   private release with k-anonymity can hold; no noise).
3. **Scoring matrix.** ``M = F + backward · Fᵀ`` (forward weight 1; watched *before*
   counts ``backward``, by default half), then each row ``a`` is divided by
   ``deg(a) ** degree_exponent`` with ``deg(a) = Σ_b M[a, b]`` (0 rows stay 0), so a
   title co-watched with everything does not drown the specific ones (``cowatch_matrix``).
4. **Scores.** A viewer's last ``recent`` titles, newest first, weigh ``decay ** p``
   (p = 0 for the newest); the score of every title is ``Σ_p decay ** p · M[s_p, :]``
   (``CowatchScorer``). Titles in no pair with those score 0 and tie.

``TUNED`` / ``TUNED_K3`` were chosen on validation splits only (``tune``, ``omega
baselines --tune --validation``); docs/results.md gives the grid and the figures.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from omega.errors import ConfigError
from omega.sim.evaluation import FloatArray, IntArray, Split, evaluate

__all__ = [
    "GRID",
    "TUNED",
    "TUNED_K3",
    "CowatchPairs",
    "CowatchScorer",
    "CowatchSettings",
    "CowatchTable",
    "cowatch_counts",
    "cowatch_matrix",
    "keep_backed",
    "robust_choice",
    "settings_from",
    "tune",
    "viewer_pairs",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class CowatchSettings:
    """The settings of the rule in the module docstring, plus the k filter."""

    window: int = 10
    recent: int = 20
    decay: float = 0.8
    degree_exponent: float = 0.5
    distance_exponent: float = 0.5
    backward: float = 0.5
    #: Keep only pairs at least this many distinct viewers contributed (1: all).
    min_viewers: int = 1

    def check(self) -> None:
        if self.window < 1 or self.recent < 1 or self.min_viewers < 1:
            raise ConfigError("co-watch window, recent titles and min viewers must be ≥ 1")
        exponents = (self.degree_exponent, self.distance_exponent, self.backward)
        if not 0.0 < self.decay <= 1.0 or min(exponents) < 0:
            raise ConfigError(
                "co-watch decay must be in (0, 1]; degree and distance exponents and the "
                "backward weight ≥ 0"
            )


#: Chosen by ``robust_choice`` over ``tune`` on three validation splits (ml-latest-small,
#: half its viewers, a synthetic log), with and without the k ≥ 3 filter: docs/evaluation.md.
TUNED = CowatchSettings()
#: The same rule, keeping only the ordered pairs ≥ 3 distinct viewers contributed.
TUNED_K3 = CowatchSettings(min_viewers=3)


@dataclass(frozen=True, slots=True)
class CowatchPairs:
    """Ordered pairs ``source[i] → target[i]`` with their weights, one per pair."""

    source: IntArray
    target: IntArray
    weight: FloatArray


def viewer_pairs(
    sequence: IntArray, window: int, *, distance_exponent: float = 0.0
) -> CowatchPairs:
    """The distinct ordered pairs one viewer's sequence contributes (rule 1), sorted by
    (source, target)."""
    owners = np.zeros(sequence.shape[0], dtype=np.int64)
    return _contributions(owners, sequence, window, distance_exponent)


def _contributions(
    owners: IntArray, items: IntArray, window: int, distance_exponent: float
) -> CowatchPairs:
    """Every distinct (owner, a → b) within ``window`` steps, with the weight of its
    closest occurrence; sorted by (owner, a, b)."""
    if window < 1:
        raise ConfigError(f"co-watch window must be at least 1, got {window}")
    items = items.astype(np.int64)
    n = int(items.max(initial=0)) + 1
    keys, weights = [np.empty(0, dtype=np.int64)], [np.empty(0)]
    for step in range(1, window + 1):
        same = (owners[:-step] == owners[step:]) & (items[:-step] != items[step:])
        # One key per (owner, a, b): fits int64 for 10⁵ titles × 10⁸ viewers.
        keys.append((owners[:-step][same] * n + items[:-step][same]) * n + items[step:][same])
        weights.append(np.full(int(same.sum()), float(step) ** -distance_exponent))
    key, weight = np.concatenate(keys), np.concatenate(weights)
    order = np.lexsort((-weight, key))  # per key, the heaviest (closest) first
    unique, first = np.unique(key[order], return_index=True)
    pair = unique % (n * n)
    return CowatchPairs(pair // n, pair % n, weight[order][first])


def cowatch_counts(
    indptr: IntArray,
    items: IntArray,
    n_items: int,
    *,
    window: int,
    distance_exponent: float = 0.0,
) -> sp.csr_matrix:
    """``F[a, b]``: the viewers' summed weights of ``a → b`` (rule 2; at exponent 0, how
    many distinct viewers had ``b`` within ``window`` steps after ``a``). Sequences are
    CSR-style (viewer ``u``'s titles are ``items[indptr[u]:indptr[u + 1]]``, oldest
    first), as ``Split.train_indptr`` / ``train_items``."""
    owners = np.repeat(np.arange(indptr.shape[0] - 1, dtype=np.int64), np.diff(indptr))
    pairs = _contributions(owners, items, window, distance_exponent)
    counts = sp.csr_matrix((pairs.weight, (pairs.source, pairs.target)), shape=(n_items, n_items))
    counts.sum_duplicates()
    return counts


def keep_backed(counts: sp.csr_matrix, support: sp.csr_matrix, min_viewers: int) -> sp.csr_matrix:
    """The entries of ``counts`` whose pair ``support`` (distinct viewers: the table at
    distance exponent 0) is at least ``min_viewers``."""
    backed = support.copy()
    backed.data = (backed.data >= min_viewers).astype(np.float64)
    backed.eliminate_zeros()
    kept: sp.csr_matrix = counts.multiply(backed).tocsr()
    kept.eliminate_zeros()
    return kept


def cowatch_matrix(
    counts: sp.csr_matrix, *, backward: float = 0.5, degree_exponent: float = 0.5
) -> sp.csr_matrix:
    """``M = F + backward · Fᵀ``, rows divided by their sum to the ``degree_exponent``."""
    matrix = (counts + backward * counts.T).tocsr()
    degree = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.zeros_like(degree)
    positive = degree > 0
    scale[positive] = degree[positive] ** -degree_exponent
    normalised: sp.csr_matrix = sp.diags(scale) @ matrix
    return normalised.tocsr()


@dataclass(frozen=True, slots=True)
class CowatchTable:
    """A split's pair table: ``counts`` (weighted, rule 2) and ``support`` (distinct
    viewers per pair; the same matrix at distance exponent 0)."""

    counts: sp.csr_matrix
    support: sp.csr_matrix

    @classmethod
    def of(cls, split: Split, *, window: int, distance_exponent: float = 0.0) -> CowatchTable:
        sequences = (split.train_indptr, split.train_items, split.n_items)
        counts = cowatch_counts(*sequences, window=window, distance_exponent=distance_exponent)
        if distance_exponent == 0:
            return cls(counts, counts)
        return cls(counts, cowatch_counts(*sequences, window=window))


class CowatchScorer:
    """Titles co-watched near the viewer's last titles (the module docstring's rule)."""

    def __init__(
        self,
        split: Split,
        settings: CowatchSettings | None = None,
        *,
        table: CowatchTable | None = None,
    ) -> None:
        """``table``: ``split``'s table for these settings' window and distance exponent,
        if already built (tuning reuses one for many settings)."""
        self.settings = settings = settings or CowatchSettings()
        settings.check()
        table = table or CowatchTable.of(
            split, window=settings.window, distance_exponent=settings.distance_exponent
        )
        self.counts = (
            keep_backed(table.counts, table.support, settings.min_viewers)
            if settings.min_viewers > 1
            else table.counts
        )
        self.matrix = cowatch_matrix(
            self.counts, backward=settings.backward, degree_exponent=settings.degree_exponent
        )
        self._split = split

    def score(self, viewers: IntArray) -> FloatArray:
        recent = _recent_weights(self._split, viewers, self.settings)
        scores: FloatArray = np.asarray((recent @ self.matrix).todense(), dtype=np.float64)
        return scores


def _recent_weights(split: Split, viewers: IntArray, settings: CowatchSettings) -> sp.csr_matrix:
    """viewers × titles: ``decay ** p`` for each viewer's p-th most recent train title."""
    indptr = split.train_indptr
    ends = indptr[viewers + 1]
    starts = np.maximum(indptr[viewers], ends - settings.recent)
    lengths = ends - starts
    rows = np.repeat(np.arange(viewers.shape[0]), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(lengths.cumsum() - lengths, lengths)
    positions = np.repeat(starts, lengths) + offsets
    back = np.repeat(ends, lengths) - 1 - positions  # p = 0 for the newest
    weights = settings.decay ** back.astype(np.float64)
    return sp.csr_matrix(
        (weights, (rows, split.train_items[positions])), shape=(viewers.shape[0], split.n_items)
    )


#: The grid ``tune`` searches (``omega baselines --tune``): 5 × 3 × 3 × 4 × 5 = 900.
GRID: dict[str, tuple[float, ...]] = {
    "window": (1, 2, 3, 5, 10),
    "distance_exponent": (0.0, 0.5, 1.0),
    "recent": (5, 10, 20),
    "decay": (1.0, 0.8, 0.6, 0.4),
    "degree_exponent": (0.0, 0.25, 0.5, 0.75, 1.0),
}

_TUNED = ("ndcg@10", "hr@10", "ndcg@10_pessimistic", "mrr")


def tune(
    split: Split,
    *,
    min_viewers: int = 1,
    grid: dict[str, tuple[float, ...]] | None = None,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Every setting of ``grid`` (keys as in ``GRID``) evaluated on ``split`` (pass the
    validation split), best tie-fair NDCG@10 first: each row holds the settings and
    ``ndcg@10``, ``hr@10``, ``ndcg@10_pessimistic``, ``mrr``. One table per (window,
    distance exponent)."""
    grid = grid or GRID
    keys = list(grid)
    tables: dict[tuple[int, float], CowatchTable] = {}
    rows: list[dict[str, float]] = []
    for values in itertools.product(*(grid[key] for key in keys)):
        named = dict(zip(keys, values, strict=True))
        settings = settings_from(named, min_viewers=min_viewers)
        shape = (settings.window, settings.distance_exponent)
        if shape not in tables:
            tables[shape] = CowatchTable.of(split, window=shape[0], distance_exponent=shape[1])
        figures = evaluate(
            split, CowatchScorer(split, settings, table=tables[shape]), seed=seed, coverage=False
        )
        rows.append(
            {k: float(v) for k, v in named.items()} | {n: float(figures[n]) for n in _TUNED}
        )
    rows.sort(key=lambda row: -row["ndcg@10"])
    return rows


def robust_choice(runs: Sequence[Sequence[Mapping[str, float]]]) -> dict[str, float]:
    """The setting whose worst NDCG@10, as a share of each run's best, is highest.

    ``runs`` are ``tune`` results over the same grid (several datasets, with and without
    the k filter); returns that setting's ``GRID`` keys plus ``worst_share``."""
    if not runs or not all(runs):
        raise ConfigError("robust_choice needs at least one non-empty tuning run")
    shares: dict[tuple[float, ...], float] = {}
    for rows in runs:
        best = max(row["ndcg@10"] for row in rows) or 1.0
        for row in rows:
            key = tuple(row[name] for name in GRID if name in row)
            shares[key] = min(shares.get(key, 1.0), row["ndcg@10"] / best)
    chosen = max(shares, key=lambda key: shares[key])
    names = [name for name in GRID if name in runs[0][0]]
    return dict(zip(names, chosen, strict=True)) | {"worst_share": shares[chosen]}


def settings_from(row: Mapping[str, float], *, min_viewers: int = 1) -> CowatchSettings:
    """Settings from a row of ``tune`` (``GRID``'s keys; defaults for any missing)."""
    base = CowatchSettings()
    return CowatchSettings(
        window=int(row.get("window", base.window)),
        recent=int(row.get("recent", base.recent)),
        decay=float(row.get("decay", base.decay)),
        degree_exponent=float(row.get("degree_exponent", base.degree_exponent)),
        distance_exponent=float(row.get("distance_exponent", base.distance_exponent)),
        min_viewers=min_viewers,
    )
