"""Tie-fair ranking metrics: equal to trec_eval's (ir-measures) without ties, and to the
average over every tie order with them; catalog coverage with seeded tie-breaking."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import ir_measures
import numpy as np
import numpy.typing as npt
import pytest
from _movielens_fixtures import Movie, Rating, write_ml_latest
from ir_measures import AP, RR, R, Success, nDCG

from omega.errors import InputError
from omega.sim import evaluate, holdout_ranks, load_dataset, split
from omega.sim.evaluation import Split, expected_gains, holdout_counts
from omega.sim.metrics import TopKCoverage, paired_difference, ranking_metrics

KS = (1, 2, 3, 5, 10)


class TableScorer:
    """Fixed scores per viewer (rows of a viewers × items table)."""

    def __init__(self, table: npt.NDArray[np.float64]) -> None:
        self.table = table

    def score(self, viewers: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        return self.table[viewers]


def _random_split(tmp_path: Path, *, viewers: int = 30, items: int = 40, seed: int = 3) -> Split:
    rng = np.random.default_rng(seed)
    movies: list[Movie] = [(i, f"Movie {i} (2001)", ("Drama",)) for i in range(1, items + 1)]
    ratings: list[Rating] = []
    for user in range(1, viewers + 1):
        watched = rng.choice(items, size=int(rng.integers(2, 12)), replace=False) + 1
        ratings += [(user, int(item), 4.0, t) for t, item in enumerate(watched)]
    return split(load_dataset(write_ml_latest(tmp_path / "ml", movies, ratings, None)))


def _trec(data: Split, table: npt.NDArray[np.float64], order: list[int]) -> dict[str, float]:
    """trec_eval's figures (through ir-measures) for the viewers in ``order``, each
    ranking every item it did not see in train."""
    seen = data.train_matrix.toarray() > 0
    qrels = {str(v): {str(int(data.holdout[v])): 1} for v in order}
    run = {
        str(v): {str(i): float(table[v, i]) for i in range(data.n_items) if not seen[v, i]}
        for v in order
    }
    measures = [RR] + [m @ k for k in KS for m in (nDCG, AP, R, Success)]
    result = ir_measures.calc_aggregate(measures, qrels, run)
    figures = {"mrr": result[RR]}
    for k in KS:
        figures |= {
            f"ndcg@{k}": result[nDCG @ k],
            f"map@{k}": result[AP @ k],
            f"recall@{k}": result[R @ k],
            f"hr@{k}": result[Success @ k],
        }
    return figures


def test_without_ties_every_metric_equals_trec_eval(tmp_path: Path) -> None:
    data = _random_split(tmp_path)
    rng = np.random.default_rng(11)
    # Distinct scores: no ties anywhere, so every rule agrees with trec_eval's ranking.
    table = rng.permutation(data.n_viewers * data.n_items).reshape(data.n_viewers, -1) * 1.0
    ours = evaluate(data, TableScorer(table), ks=KS)
    theirs = _trec(data, table, list(range(data.n_viewers)))
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value, abs=1e-9), name
        if name.startswith(("hr@", "ndcg@", "mrr")):
            assert ours[f"{name}_pessimistic"] == pytest.approx(value, abs=1e-9)
            assert ours[f"{name}_optimistic"] == pytest.approx(value, abs=1e-9)
    assert 0.0 < ours["ndcg@10"] < 1.0  # the example is not degenerate
    # A subset of viewers, in a given order, measures just those.
    chosen = np.array([7, 2, 19], dtype=np.int64)
    subset = evaluate(data, TableScorer(table), viewers=chosen, ks=KS)
    assert subset["viewers"] == 3
    assert subset["mrr"] == pytest.approx(_trec(data, table, [7, 2, 19])["mrr"], abs=1e-9)


def _tie_orders(scores: list[float]) -> list[list[int]]:
    """Every ranking of ``scores``' indices by descending score (ties in any order)."""
    return [
        list(order)
        for order in itertools.permutations(range(len(scores)))
        if all(scores[a] >= scores[b] for a, b in itertools.pairwise(order))
    ]


def test_with_ties_the_expected_figure_is_the_mean_over_tie_orders() -> None:
    # Three viewers' unseen items; index 0 is the held-out one each time.
    viewers = [
        [2.0, 3.0, 2.0, 2.0, 1.0, 2.0],  # 1 above, 3 tied: ranks 1…4
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],  # everything tied: ranks 0…5
        [0.5, 3.0, 2.0, 0.5, 0.1, 0.5],  # 2 above, 2 tied: ranks 2…4
    ]
    cut = (1, 2, 3, 5)
    higher = np.array([sum(s > v[0] for s in v[1:]) for v in viewers], dtype=np.int64)
    tied = np.array([sum(s == v[0] for s in v[1:]) for v in viewers], dtype=np.int64)
    ours = ranking_metrics(higher, tied, ks=cut)
    measures = [RR] + [m @ k for k in cut for m in (nDCG, AP, R)]
    means = dict.fromkeys(measures, 0.0)
    for scores in viewers:
        orders = _tie_orders(scores)
        for order in orders:
            # This tie order as strict scores, measured by trec_eval.
            run = {"q": {f"d{item}": float(len(order) - place) for place, item in enumerate(order)}}
            result = ir_measures.calc_aggregate(measures, {"q": {"d0": 1}}, run)
            for measure in measures:
                means[measure] += result[measure] / len(orders) / len(viewers)
    assert ours["mrr"] == pytest.approx(means[RR], abs=1e-9)
    for k in cut:
        assert ours[f"ndcg@{k}"] == pytest.approx(means[nDCG @ k], abs=1e-9)
        assert ours[f"map@{k}"] == pytest.approx(means[AP @ k], abs=1e-9)
        assert ours[f"recall@{k}"] == pytest.approx(means[R @ k], abs=1e-9)
        assert ours[f"hr@{k}"] == ours[f"recall@{k}"]
    # Ties all lost / all won: ranks 4, 5, 4 / 1, 0, 2.
    assert ours["mrr_pessimistic"] == pytest.approx((1 / 5 + 1 / 6 + 1 / 5) / 3)
    assert ours["mrr_optimistic"] == pytest.approx((1 / 2 + 1 + 1 / 3) / 3)
    assert ours["hr@3_pessimistic"] == 0.0
    assert ours["hr@3_optimistic"] == 1.0
    assert ours["ndcg@3_pessimistic"] < ours["ndcg@3"] < ours["ndcg@3_optimistic"]


def test_expected_gains_agrees_and_rejects_bad_counts() -> None:
    higher = np.array([0, 3, 8, 12], dtype=np.int64)
    tied = np.array([9, 0, 4, 2], dtype=np.int64)
    hits, gains = expected_gains(higher, tied, 10)
    figures = ranking_metrics(higher, tied, ks=(10,))
    assert figures["hr@10"] == pytest.approx(hits.mean())
    assert figures["ndcg@10"] == pytest.approx(gains.mean())
    # Standard errors of the tie-fair means over the four viewers: std(ddof=1) / √4.
    assert figures["ndcg@10_se"] == pytest.approx(gains.std(ddof=1) / 2)
    assert figures["hr@10_se"] == pytest.approx(hits.std(ddof=1) / 2)
    assert figures["hr@10_se"] > 0
    assert ranking_metrics(higher[:1], tied[:1])["ndcg@10_se"] == 0.0  # one viewer: none
    assert hits.tolist() == pytest.approx([1.0, 1.0, 2 / 5, 0.0])
    with pytest.raises(InputError, match="shape"):
        ranking_metrics(higher, tied[:2])
    with pytest.raises(InputError, match="non-negative"):
        ranking_metrics(higher - 1, tied)
    assert ranking_metrics(higher[:0], tied[:0])["ndcg@10"] == 0.0


def test_holdout_counts_and_ranks_use_one_rule(tmp_path: Path) -> None:
    data = _random_split(tmp_path, viewers=8, items=15)
    table = np.round(np.random.default_rng(5).random((8, 15)) * 3)  # many ties
    higher, tied = holdout_counts(data, TableScorer(table))
    best, worst = holdout_ranks(data, TableScorer(table))
    assert best.tolist() == higher.tolist()
    assert worst.tolist() == (higher + tied).tolist()
    assert tied.sum() > 0
    seen = data.train_matrix.toarray() > 0
    for v in range(8):
        unseen = [i for i in range(15) if not seen[v, i] and i != data.holdout[v]]
        target = table[v, data.holdout[v]]
        assert higher[v] == sum(table[v, i] > target for i in unseen)
        assert tied[v] == sum(table[v, i] == target for i in unseen)


def test_coverage_counts_the_union_of_top_k_and_breaks_ties_with_the_seed() -> None:
    scores = np.array(
        [
            [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],
            [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
            [9.0, -np.inf, -np.inf, -np.inf, -np.inf, -np.inf],  # one item left to show
        ]
    )
    cover = TopKCoverage(6, ks=(1, 2), seed=0)
    cover.add(scores)
    assert cover.figures() == {"coverage@1": 2 / 6, "coverage@2": 4 / 6}

    def constant(seed: int) -> dict[str, float]:
        cover = TopKCoverage(1000, ks=(1, 5), seed=seed)
        for _ in range(4):
            cover.add(np.zeros((50, 1000)))
        return cover.figures()

    drawn = constant(7)
    # 200 rows × 1 of 1000 tied items drawn at random: not the first item every time.
    assert 0.1 < drawn["coverage@1"] < 0.25
    assert drawn["coverage@1"] < drawn["coverage@5"]
    assert constant(7) == drawn
    assert constant(8) != drawn


def test_evaluate_reports_every_figure_for_every_cutoff(tmp_path: Path) -> None:
    data = _random_split(tmp_path, viewers=10, items=30)
    table = np.random.default_rng(2).random((10, 30))
    figures = evaluate(data, TableScorer(table))
    for k in (5, 10, 20):
        for name in ("hr", "ndcg", "map", "recall", "coverage"):
            assert 0.0 <= figures[f"{name}@{k}"] <= 1.0, (name, k)
        assert figures[f"ndcg@{k}_pessimistic"] <= figures[f"ndcg@{k}"]
        assert figures[f"map@{k}"] <= figures["mrr"]
    assert figures["coverage@5"] <= figures["coverage@10"] <= figures["coverage@20"]
    assert "coverage@10" not in evaluate(data, TableScorer(table), coverage=False)
    assert math.isclose(figures["viewers"], 10)


def test_the_paired_difference_is_the_spread_of_the_differences_not_of_either_row() -> None:
    """Two rows that move together viewer by viewer: the mean of the differences, and a
    standard error from their spread (0.5 / √4 here), far below either row's own."""
    ours = np.array([0.9, 0.1, 0.5, 0.3])
    theirs = ours - np.array([0.2, 0.2, 0.2, -0.2])
    diff, se = paired_difference(ours, theirs)
    assert diff == pytest.approx(0.1)
    assert se == pytest.approx(np.array([0.2, 0.2, 0.2, -0.2]).std(ddof=1) / 2)
    assert se < ours.std(ddof=1) / 2
    assert paired_difference(ours[:1], theirs[:1]) == (pytest.approx(0.2), 0.0)
    with pytest.raises(InputError, match="differ in shape"):
        paired_difference(ours, theirs[:3])
