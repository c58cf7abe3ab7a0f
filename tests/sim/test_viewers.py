"""Synthetic viewing logs: a valid ``Dataset``, daily habits, and learnable sequences."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest

from omega.errors import ConfigError
from omega.sim import (
    Dataset,
    PopularityScorer,
    TransitionScorer,
    evaluate,
    split,
    synthetic_dataset,
)
from omega.sim.synthetic import synthetic_titles
from omega.sim.viewers import START_TS

DAY = 86_400


@pytest.fixture(scope="module")
def data() -> Dataset:
    return synthetic_dataset()  # the defaults: 1,500 titles, 200 viewers, 14 days


def _hours(dataset: Dataset) -> npt.NDArray[np.int64]:
    return (dataset.timestamps % DAY) // 3600


def test_same_seed_same_log_other_seed_another() -> None:
    a, b = synthetic_dataset(viewers=30, seed=3), synthetic_dataset(viewers=30, seed=3)
    assert a.items == b.items and a.user_ids == b.user_ids
    for name in ("users", "items_idx", "ratings", "timestamps", "item_keys"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = synthetic_dataset(viewers=30, seed=4)
    assert c.n_ratings != a.n_ratings or not np.array_equal(c.items_idx, a.items_idx)


def test_dataset_invariants(data: Dataset) -> None:
    assert data.format == "synthetic"
    assert "seed=0" in str(data.path)
    catalog = synthetic_titles(1500, seed=0)
    assert [(i.item_id, i.title, i.genres, i.year) for i in data.items] == [
        (s.item_id, s.title, s.genres, s.year) for s in catalog
    ]
    assert all(item.tags == () for item in data.items)
    assert data.n_items == 1500 and data.n_users == 200
    assert data.user_ids == tuple(str(u) for u in range(1, 201))
    assert data.user_index == {user: u for u, user in enumerate(data.user_ids)}
    assert data.item_index == {item.item_id: i for i, item in enumerate(data.items)}
    np.testing.assert_array_equal(data.item_keys, np.arange(1500))
    n = data.n_ratings
    assert data.users.dtype == np.int32 and data.users.shape == (n,)
    assert data.items_idx.dtype == np.int32 and data.items_idx.shape == (n,)
    assert data.ratings.dtype == np.float32 and data.ratings.shape == (n,)
    assert data.timestamps.dtype == np.int64 and data.timestamps.shape == (n,)
    assert data.item_keys.dtype == np.int64
    assert (data.items_idx >= 0).all() and (data.items_idx < data.n_items).all()
    # Rows by viewer; every viewer has a log of realistic length.
    assert (np.diff(data.users) >= 0).all()
    counts = np.bincount(data.users, minlength=data.n_users)
    assert counts.min() >= 5 and 20 <= counts.mean() <= 60 and counts.max() <= 80
    # Half stars in [0.5, 5], each title at most once per viewer.
    assert data.ratings.min() >= 0.5 and data.ratings.max() <= 5.0
    np.testing.assert_array_equal(data.ratings * 2, np.round(data.ratings * 2))
    pairs = data.users.astype(np.int64) * data.n_items + data.items_idx
    assert np.unique(pairs).shape[0] == n
    # The evaluation protocol accepts it as it is.
    assert split(data).n_viewers == 200


def test_timestamps_fill_the_window_in_order(data: Dataset) -> None:
    assert datetime.fromtimestamp(START_TS, UTC) == datetime(2026, 1, 5, tzinfo=UTC)
    ts = data.timestamps
    assert ts.min() >= START_TS and ts.max() < START_TS + 14 * DAY
    same_viewer = data.users[1:] == data.users[:-1]
    assert (np.diff(ts)[same_viewer] > 0).all()
    days = (ts - START_TS) // DAY
    assert np.unique(days).shape[0] == 14
    short = synthetic_dataset(viewers=20, days=3)
    assert short.timestamps.max() < START_TS + 3 * DAY
    assert short.n_ratings < synthetic_dataset(viewers=20, days=14).n_ratings


def test_daily_habits(data: Dataset) -> None:
    hours = _hours(data)
    evening = (hours >= 17) & (hours < 23)
    assert evening.mean() > 0.6
    assert ((hours >= 5) & (hours < 12)).mean() < 0.02  # hardly anyone watches mornings
    # Afternoons are a weekend habit (day 0 is a Monday).
    weekend = ((data.timestamps - START_TS) // DAY) % 7 >= 5
    afternoon = (hours >= 12) & (hours < 17)
    assert afternoon[weekend].mean() > 3 * afternoon[~weekend].mean()
    # A few viewers are night owls: most of their viewing after 23:00.
    night = (hours >= 23) | (hours < 5)
    night_share = np.bincount(data.users, weights=night) / np.bincount(data.users)
    assert 0.02 <= (night_share > 0.5).mean() <= 0.3


def test_sequences_and_taste(data: Dataset) -> None:
    same_viewer = data.users[1:] == data.users[:-1]
    before, after = data.items_idx[:-1][same_viewer], data.items_idx[1:][same_viewer]
    items = data.items
    codes = {g: c for c, g in enumerate(sorted({i.genres[0] for i in items}))}
    primary = np.array([codes[i.genres[0]] for i in items])
    assert (primary[before] == primary[after]).mean() > 0.4  # binges stay in a genre
    # Part N is often followed by part N + 1 (the next title of the same franchise).
    sequel = [
        b == a + 1
        and items[b].genres == items[a].genres
        and items[b].title.startswith(items[a].title)
        for a, b in zip(before, after, strict=True)
    ]
    assert np.mean(sequel) > 0.08
    # Popularity skew: the top title reaches far more viewers than the median one.
    reach = np.bincount(data.items_idx, minlength=data.n_items)
    assert reach.max() >= 0.25 * data.n_users and np.median(reach) <= 5
    # Taste: a viewer rates their most-watched genre higher than the others.
    favourite, other = [], []
    for u in range(data.n_users):
        rows = data.users == u
        genres = primary[data.items_idx[rows]]
        values, counts = np.unique(genres, return_counts=True)
        top = genres == values[np.argmax(counts)]
        favourite.append(data.ratings[rows][top].mean())
        if (~top).any():
            other.append(data.ratings[rows][~top].mean())
    assert np.mean(favourite) > np.mean(other) + 0.5


def test_structure_is_learnable(data: Dataset) -> None:
    """Popularity beats chance and co-watch transitions beat popularity by a wide margin."""
    parts = split(data)
    rng = np.random.default_rng(0)
    noise = rng.random((parts.n_viewers, parts.n_items))

    class Random:
        def score(self, viewers: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
            return noise[viewers]

    chance = evaluate(parts, Random())["ndcg@10"]
    popularity = evaluate(parts, PopularityScorer(parts))
    transitions = evaluate(parts, TransitionScorer(parts))
    assert popularity["ndcg@10"] > 3 * chance
    assert transitions["ndcg@10"] > 2 * popularity["ndcg@10"]
    # Not only by winning ties: the pessimistic figure beats popularity too.
    assert transitions["ndcg@10_pessimistic"] > 2 * popularity["ndcg@10_pessimistic"]


def test_tiny_and_invalid_configurations() -> None:
    tiny = synthetic_dataset(titles=3, viewers=4, days=1, seed=9)
    assert np.bincount(tiny.users, minlength=4).min() >= 1
    assert tiny.timestamps.max() < START_TS + DAY
    for bad in ({"titles": 0}, {"viewers": 0}, {"days": 0}):
        with pytest.raises(ConfigError):
            synthetic_dataset(**bad)
