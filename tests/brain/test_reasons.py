"""A recommendation's reason cites only what this household did: a genre is named when
the household started titles of it, never because the candidate merely has it."""

from __future__ import annotations

import numpy as np

from omega.brain.catalog import Catalog, ItemRow
from omega.brain.recommend import Evidence, explain, reason_for
from omega.brain.skills import SKILLS

TITLES = [
    ("Heat", ("Crime", "Thriller")),
    ("Casino", ("Crime", "Drama")),
    ("Up", ("Animation",)),
    ("Planet Earth", ("Documentary",)),
    ("Senna", ("Documentary", "Drama")),
]


def _catalog() -> Catalog:
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(len(TITLES), 384)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    rows = [
        ItemRow(key=n, item_id=f"m{n}", title=t, genres=g, year=2000, runtime_min=90, cell=0)
        for n, (t, g) in enumerate(TITLES)
    ]
    return Catalog(rows, matrix, k=1)


def _semantic_reason(evidence: Evidence) -> str:
    # the long-term taste carries the score: the reason that cites a genre
    signals = {"recent": 0.0, "semantic": 1.0, "popular": 0.0}
    return reason_for(signals, SKILLS["taste"], evidence=evidence, time_bucket="evening")


def test_a_genre_is_named_only_when_the_household_watched_it() -> None:
    catalog = _catalog()
    watched = [(0, 1.0), (1, 0.8)]  # Heat, Casino: crime twice, thriller and drama once
    planet, senna = explain(catalog, [3, 4], watched)
    assert planet.genre is None  # a documentary: nothing watched lately shares a genre
    assert _semantic_reason(planet) == "matches your long-term taste"
    assert senna.genre == "Drama"  # its documentary genre was never watched
    assert _semantic_reason(senna) == (
        "matches your taste for Drama (1 of the last 2 titles you started)"
    )


def test_the_genre_most_watched_lately_is_the_one_named() -> None:
    catalog = _catalog()
    (heat,) = explain(catalog, [0], [(1, 1.0), (4, 0.8)])  # Casino, Senna: drama twice
    assert heat.genre == "Crime"  # Heat is not drama; crime is its genre watched (once)
    (casino,) = explain(catalog, [1], [(0, 1.0), (4, 0.8), (2, 0.6)])
    assert casino.genre in ("Crime", "Drama")
    assert casino.genre_count == 1 and casino.recent_count == 3


def test_with_nothing_watched_no_genre_is_named() -> None:
    (up,) = explain(_catalog(), [2], [])
    assert up == Evidence()
    assert _semantic_reason(up) == "matches your long-term taste"
