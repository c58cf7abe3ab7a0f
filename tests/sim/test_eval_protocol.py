"""The evaluation protocol: hold-out order, masking, ranks, ties and the two metrics."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from _movielens_fixtures import Movie, Rating, write_ml100k, write_ml_latest

from omega.errors import InputError
from omega.sim import (
    Split,
    ViewerScorer,
    evaluate,
    holdout_ranks,
    load_dataset,
    rank_metrics,
    split,
)
from omega.sim.evaluation import validation_dataset, viewer_subsample


def _ids(data: Split, items: npt.NDArray[np.int64]) -> list[str]:
    return [data.dataset.items[int(i)].item_id for i in items]


@pytest.mark.parametrize("writer", [write_ml_latest, write_ml100k])
def test_holdout_is_last_by_timestamp_then_numeric_item_id(
    tmp_path: Path, writer: Callable[[Path], Path]
) -> None:
    data = split(load_dataset(writer(tmp_path / "ml")))
    users = data.dataset.user_index
    # User 1 rated "10" and "9" in the same second: as numbers 10 > 9, so "10" is last
    # (string order would have held out "9").
    assert _ids(data, data.holdout[[users["1"]]]) == ["10"]
    assert _ids(data, data.train_sequence(users["1"])) == ["1", "2", "9"]
    items, ratings, stamps = data.train_history(users["1"])
    assert _ids(data, items) == ["1", "2", "9"]
    assert ratings.tolist() == [4.0, 3.5, 2.0] if writer is write_ml_latest else [4, 3, 2]
    assert stamps.tolist() == [100, 200, 300]
    # File order is not the protocol's order: user 10's "2" came first in time.
    assert _ids(data, data.holdout[[users["10"]]]) == ["77"]
    assert _ids(data, data.train_sequence(users["10"])) == ["2"]
    assert _ids(data, data.holdout[[users["2"]]]) == ["1"]
    assert data.n_viewers == 3
    assert data.train_timestamps[data.train_indptr[users["1"]] :].tolist()[:3] == [100, 200, 300]
    matrix = data.train_matrix.toarray()
    assert matrix.sum() == 5  # 8 ratings minus 3 held out
    assert matrix[users["1"], data.dataset.item_index["9"]] == 1
    assert matrix[users["1"], data.dataset.item_index["10"]] == 0


@pytest.mark.parametrize("writer", [write_ml_latest, write_ml100k])
def test_validation_holds_out_second_to_last_and_never_sees_the_last(
    tmp_path: Path, writer: Callable[[Path], Path]
) -> None:
    full = load_dataset(writer(tmp_path / "ml"))
    data = split(validation_dataset(full))
    users = data.dataset.user_index
    # User 1: 1, 2, 9, 10 in protocol order ("10" after "9" in the same second): the test
    # item "10" is gone, "9" is held out, "1" and "2" train.
    assert _ids(data, data.holdout[[users["1"]]]) == ["9"]
    assert _ids(data, data.train_sequence(users["1"])) == ["1", "2"]
    # User 10 ("2" then "77"): "2" is held out with nothing before it.
    assert _ids(data, data.holdout[[users["10"]]]) == ["2"]
    assert data.train_sequence(users["10"]).size == 0
    test = split(full)
    for v in range(test.n_viewers):  # every fixture viewer has ≥ 2 interactions, no re-rating
        assert data.holdout[v] != test.holdout[v]
        assert test.holdout[v] not in data.train_sequence(v).tolist()
    assert data.dataset.n_ratings == full.n_ratings - 3
    assert full.n_ratings == 8  # the original is untouched


def test_validation_keeps_a_single_interaction(tmp_path: Path) -> None:
    movies: list[Movie] = [(1, "A (2000)", ()), (2, "B (2000)", ())]
    full = load_dataset(write_ml_latest(tmp_path / "ml", movies, [(5, 2, 4.0, 1)], None))
    data = split(validation_dataset(full))
    assert _ids(data, data.holdout) == ["2"]


def test_single_rating_viewer_has_empty_train(tmp_path: Path) -> None:
    movies: list[Movie] = [(1, "A (2000)", ()), (2, "B (2000)", ())]
    data = split(load_dataset(write_ml_latest(tmp_path / "ml", movies, [(5, 2, 4.0, 1)], None)))
    assert data.train_sequence(0).size == 0
    assert _ids(data, data.holdout) == ["2"]


class FixedScorer:
    """The same scores for every viewer."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = np.asarray(scores, dtype=np.float64)

    def score(self, viewers: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        return np.tile(self.scores, (viewers.shape[0], 1))


def _twelve_items(tmp_path: Path, ratings: list[Rating]) -> Split:
    movies: list[Movie] = [(i, f"Movie {i} (2001)", ("Drama",)) for i in range(1, 13)]
    return split(load_dataset(write_ml_latest(tmp_path / "ml", movies, ratings, None)))


def test_metrics_on_a_hand_computed_example(tmp_path: Path) -> None:
    ratings: list[Rating] = [
        (1, 1, 4, 1), (1, 2, 4, 2), (1, 3, 4, 3),  # held out 3
        (2, 4, 4, 1), (2, 5, 4, 2),  # held out 5
        (3, 6, 4, 1), (3, 7, 4, 2),  # held out 7
        (4, 1, 4, 1), (4, 12, 4, 2),  # held out 12
    ]  # fmt: skip
    data = _twelve_items(tmp_path, ratings)
    # Item i scores 13 - i: item 1 is best. Watched items score high but are excluded.
    scorer = FixedScorer([13.0 - i for i in range(1, 13)])
    best, worst = holdout_ranks(data, scorer)
    # 1: items 1, 2 seen → 3 first. 2: 1, 2, 3 above 5. 3: 1–5 above 7 (6 seen).
    # 4: 2–11 above 12 (1 seen) → rank 10, a miss.
    assert best.tolist() == [0, 3, 5, 10]
    assert worst.tolist() == [0, 3, 5, 10]  # no ties
    result = evaluate(data, scorer)
    assert result["viewers"] == 4
    assert result["hr@10"] == pytest.approx(3 / 4)
    expected = (1.0 + 1 / math.log2(5) + 1 / math.log2(7) + 0.0) / 4
    assert result["ndcg@10"] == pytest.approx(expected)
    assert result["ndcg@10_pessimistic"] == pytest.approx(expected)
    # The same scores given one viewer at a time.
    one_by_one = ViewerScorer(lambda viewer: scorer.scores)
    assert evaluate(data, one_by_one) == result


def test_rank_metrics_cutoff() -> None:
    hr, ndcg = rank_metrics(np.array([0, 1, 9, 10, 500]))
    assert hr == pytest.approx(3 / 5)
    assert ndcg == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(11)) / 5)
    assert rank_metrics(np.array([], dtype=np.int64)) == (0.0, 0.0)


def test_ties_count_fairly_with_both_extremes_beside(tmp_path: Path) -> None:
    data = _twelve_items(tmp_path, [(1, 1, 4, 1), (1, 2, 4, 2)])
    result = evaluate(data, FixedScorer([0.0] * 12))
    # A constant scorer: 11 unseen items, the held-out one and 10 tied with it, so its rank
    # is uniform over 0…10. Won ties give rank 0 (the old rule), lost ones rank 10.
    assert result["hr@10"] == pytest.approx(10 / 11)
    gains = sum(1 / math.log2(r + 2) for r in range(10)) / 11
    assert result["ndcg@10"] == pytest.approx(gains)
    assert result["mrr"] == pytest.approx(sum(1 / (r + 1) for r in range(11)) / 11)
    assert result["hr@10_optimistic"] == 1.0
    assert result["ndcg@10_optimistic"] == 1.0
    assert result["hr@10_pessimistic"] == 0.0
    assert result["ndcg@10_pessimistic"] == 0.0


def test_rewatched_holdout_item_is_still_ranked(tmp_path: Path) -> None:
    data = _twelve_items(tmp_path, [(1, 5, 4, 1), (1, 3, 4, 2), (1, 5, 5, 3)])
    assert _ids(data, data.holdout) == ["5"]
    scores = [0.0] * 12
    scores[4] = 1.0  # item "5"
    best, _ = holdout_ranks(data, FixedScorer(scores))
    assert best.tolist() == [0]


def test_scorer_output_is_checked(tmp_path: Path) -> None:
    data = _twelve_items(tmp_path, [(1, 1, 4, 1), (1, 2, 4, 2)])
    with pytest.raises(InputError, match="shape"):
        evaluate(data, FixedScorer([0.0] * 11))
    with pytest.raises(InputError, match="NaN"):
        evaluate(data, FixedScorer([math.nan] * 12))


def test_viewer_subsample_keeps_whole_viewers(tmp_path: Path) -> None:
    full = load_dataset(write_ml_latest(tmp_path / "ml"))
    half = viewer_subsample(full, 0.5, seed=4)
    assert half.n_users == 1  # int(3 · 0.5)
    (user,) = half.user_ids
    original = full.user_index[user]
    assert half.n_ratings == int((full.users == original).sum())
    assert half.users.tolist() == [0] * half.n_ratings
    assert half.items == full.items  # the same catalog
    assert viewer_subsample(full, 0.5, seed=4).user_ids == half.user_ids
    assert viewer_subsample(full, 1.0).n_ratings == full.n_ratings
    with pytest.raises(InputError, match="share"):
        viewer_subsample(full, 0.0)
