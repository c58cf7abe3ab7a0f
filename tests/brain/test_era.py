"""The ``era`` signal: titles released near the years of what was just watched rank up."""

from __future__ import annotations

import numpy as np

from omega.brain.catalog import Catalog, ItemRow
from omega.brain.recommend import ERA_YEARS, era_gap


def _catalog(years: list[int | None]) -> Catalog:
    rows = [
        ItemRow(
            key=i + 1,
            item_id=f"t{i}",
            title=f"Title {i}",
            genres=(),
            year=y,
            runtime_min=None,
            cell=0,
        )
        for i, y in enumerate(years)
    ]
    matrix = np.eye(len(rows), 384, dtype=np.float32)
    return Catalog(rows, matrix, 1)


def test_the_gap_is_to_the_nearest_recent_year() -> None:
    catalog = _catalog([1980, 1995, 2010, 1999, None])
    rows = np.arange(5, dtype=np.int64)
    gap = era_gap(catalog, rows, [(0, 1.0), (2, 0.5)])  # watched: 1980 and 2010
    assert gap[1] == np.float32(-15 / ERA_YEARS)  # 1995: 15 years from either
    assert gap[3] == np.float32(-11 / ERA_YEARS)  # 1999: 11 years from 2010
    assert gap[0] == 0 and gap[2] == 0
    assert gap[4] == 0  # unknown year: no penalty


def test_no_recent_year_means_no_signal() -> None:
    catalog = _catalog([1980, None, 2000])
    rows = np.arange(3, dtype=np.int64)
    assert not era_gap(catalog, rows, []).any()
    assert not era_gap(catalog, rows, [(1, 1.0)]).any()
