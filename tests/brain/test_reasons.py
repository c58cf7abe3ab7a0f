"""A recommendation's reason cites only what this household did: a genre is named when
the household started titles of it, never because the candidate merely has it."""

from __future__ import annotations

import numpy as np
import pytest

from omega.brain.catalog import Catalog, ItemRow
from omega.brain.cowatch import Edges
from omega.brain.reasons import Evidence, explain, reason_for, reasons
from omega.brain.recommend import SIGNALS
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


def _wide_catalog(n: int, rng: np.random.Generator) -> Catalog:
    genres = ("Crime", "Drama", "Comedy", "Documentary", "Animation", "Thriller")
    matrix = rng.normal(size=(n, 384)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    rows = [
        ItemRow(
            key=i,
            item_id=f"m{i}",
            title=f"Title {i}",
            genres=tuple(rng.choice(genres, size=int(rng.integers(0, 3)), replace=False)),
            year=2000,
            runtime_min=90,
            cell=0,
        )
        for i in range(n)
    ]
    return Catalog(rows, matrix, k=1)


@pytest.mark.parametrize("seed", range(6))
def test_a_list_is_worded_as_each_title_alone_would_be(seed: int) -> None:
    """``reasons`` (what a request uses) says, title by title, what ``reason_for`` says
    with the title's full ``explain`` evidence: whichever signal is on top, with ties,
    with nothing above 0, with no recent titles and with no co-watch table."""
    rng = np.random.default_rng(seed)
    catalog = _wide_catalog(60, rng)
    picked = rng.choice(60, size=12, replace=False).tolist()
    recent = [(int(r), 1.0) for r in rng.choice(60, size=int(rng.integers(0, 6)), replace=False)]
    edges = None
    if seed % 3:
        size = int(rng.integers(5, 80))
        edges = Edges(
            rng.choice([*picked, 0, 1, 2], size=size).astype(np.int64),
            rng.choice([0.0, 0.25, 0.5, 1.0], size=size).astype(np.float32),
            rng.choice(60, size=size).astype(np.int64),
        )
    worded: list[str] = []
    for skill in SKILLS.values():
        # A few levels, so that contributions tie; the first title has nothing above 0.
        levels = rng.choice([-0.5, 0.0, 0.25, 0.5, 1.0], size=(len(SIGNALS), len(picked)))
        levels[:, 0] = np.minimum(levels[:, 0], 0.0)
        values = {name: levels[i].tolist() for i, name in enumerate(SIGNALS)}
        got = reasons(
            catalog, picked, values, skill, recent=recent, cowatch=edges, time_bucket="evening"
        )
        evidence = explain(catalog, picked, recent, cowatch=edges)
        alone = [
            reason_for(
                {name: values[name][i] for name in SIGNALS},
                skill,
                evidence=evidence[i],
                time_bucket="evening",
            )
            for i in range(len(picked))
        ]
        assert got == alone
        worded += got
    assert "a varied pick to get to know your taste" in worded
    assert len({w.split(" ")[0] for w in worded}) >= (5 if recent else 3)
