from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from omega.brain import Brain, BrainConfig, CatalogItem
from omega.brain.embedder import Embedder, shared_embedder
from omega.clock import ManualClock

# A small hand-made catalog: three obvious families so behaviour is easy to read.
FAMILIES = {
    "animation": [
        ("Toy Story", 1995),
        ("Toy Story 2", 1999),
        ("Toy Story 3", 2010),
        ("Finding Nemo", 2003),
        ("Monsters, Inc.", 2001),
        ("The Incredibles", 2004),
        ("Up", 2009),
        ("Cars", 2006),
        ("Ratatouille", 2007),
        ("Inside Out", 2015),
        ("Coco", 2017),
        ("Frozen", 2013),
    ],
    "crime": [
        ("Heat", 1995),
        ("The Godfather", 1972),
        ("Goodfellas", 1990),
        ("Casino", 1995),
        ("The Departed", 2006),
        ("Scarface", 1983),
        ("Pulp Fiction", 1994),
        ("Reservoir Dogs", 1992),
        ("Collateral", 2004),
        ("The Irishman", 2019),
        ("Donnie Brasco", 1997),
        ("Training Day", 2001),
    ],
    "documentary": [
        ("Planet Earth", 2006),
        ("Blue Planet", 2001),
        ("March of the Penguins", 2005),
        ("Free Solo", 2018),
        ("Man on Wire", 2008),
        ("Jiro Dreams of Sushi", 2011),
        ("Our Planet", 2019),
        ("The Last Dance", 2020),
        ("Senna", 2010),
        ("Searching for Sugar Man", 2012),
        ("Won't You Be My Neighbor?", 2018),
        ("Icarus", 2017),
    ],
}
GENRES = {
    "animation": ("Animation", "Children", "Comedy"),
    "crime": ("Crime", "Thriller", "Drama"),
    "documentary": ("Documentary",),
}


def catalog_items() -> list[CatalogItem]:
    items = []
    for family, titles in FAMILIES.items():
        for n, (title, year) in enumerate(titles):
            items.append(
                CatalogItem(
                    item_id=f"{family[:3]}{n}",
                    title=title,
                    year=year,
                    genres=GENRES[family],
                    runtime_min=90 + 10 * (n % 5),
                )
            )
    return items


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return shared_embedder()


@pytest.fixture(scope="session")
def catalog_vectors(embedder: Embedder) -> dict[str, np.ndarray]:
    from omega.brain.catalog import item_text

    items = catalog_items()
    vectors = embedder.embed([item_text(i) for i in items])
    return {item.item_id: vectors[n] for n, item in enumerate(items)}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)  # a Tuesday, 22:13 UTC


@pytest.fixture
def config() -> BrainConfig:
    return BrainConfig(codebook_cells=6, flush_every=8)


@pytest.fixture
def brain(
    tmp_path: Path,
    clock: ManualClock,
    config: BrainConfig,
    embedder: Embedder,
    catalog_vectors: dict[str, np.ndarray],
) -> Iterator[Brain]:
    b = Brain.open(tmp_path / "tv", clock=clock, config=config, embedder=embedder)
    b.upsert_items(
        [
            CatalogItem(
                item_id=i.item_id,
                title=i.title,
                year=i.year,
                genres=i.genres,
                runtime_min=i.runtime_min,
                embedding=catalog_vectors[i.item_id],
            )
            for i in catalog_items()
        ]
    )
    yield b
    b.close()
