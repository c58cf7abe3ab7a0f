"""Trends: content that is rising, per region, with real exponential time decay.

Each distinct viewer counts once per (region, cell) — at the newest ``updated_at`` of its
positive patterns on that cell (the cell a pattern recommends; behaviour patterns are
not interest). Two exponentially decayed counts are kept, a fast one with half-life
``h`` and a slow baseline with half-life ``H`` > h::

    F = Σ 2^(-age / h)        S = Σ 2^(-age / H)

The live set only holds the last W = ``max_age_s``, so a steady stream at rate r gives
F = r·h·(1 - 2^(-W/h))/ln 2 and S = r·H·(1 - 2^(-W/H))/ln 2. With c the ratio of the
two, ``score = F - c·S`` is ≈ 0 for steady content, > 0 when recent activity outpaces the
baseline and < 0 when it fades. A cell trends when F ≥ ``trend_min_lift`` · c·S (it is
clearly rising, not noise) and it has at least ``trend_min_viewers`` viewers; each region
keeps its top ``trends_per_region`` by score, and region ``global`` pools every viewer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from omega.federation._table import BEHAVIOUR, F64, I64, PatternTable, build_table
from omega.federation.config import FederationConfig
from omega.protocol.messages import Trend
from omega.storage.base import LivePattern

__all__ = [
    "GLOBAL_REGION",
    "Candidates",
    "detect_trends",
    "detect_trends_table",
    "pick_trends",
    "trend_candidates",
    "trend_regions",
]

GLOBAL_REGION = "global"
LN2 = math.log(2.0)


def detect_trends(
    live: Sequence[LivePattern], config: FederationConfig, *, k: int, now: float
) -> list[Trend]:
    """Rising cells by region (and ``global``), best first within each region."""
    table = build_table(live, config, k=k, now=now)
    return detect_trends_table(table, config, now=now)


def detect_trends_table(t: PatternTable, config: FederationConfig, *, now: float) -> list[Trend]:
    return pick_trends(trend_regions(t.regions), [trend_candidates(t, config, now=now)], config)


#: Per region of ``trend_regions``: the cells that may trend and their (unrounded) scores.
Candidates = list[tuple[I64, F64]]


def trend_regions(regions: Sequence[str]) -> list[str]:
    """A table's regions with ``global`` (the pooled region) appended unless present."""
    return list(regions) if GLOBAL_REGION in regions else [*regions, GLOBAL_REGION]


def trend_candidates(t: PatternTable, config: FederationConfig, *, now: float) -> Candidates:
    """Every cell of ``t`` that passes the trend rules, per region of ``trend_regions``
    (empty when nothing can trend). Each cell's figures depend only on its own rows, so
    tables split by cell give the same candidates between them (``pick_trends`` merges)."""
    positive = t.task != BEHAVIOUR
    if not positive.any() or config.trends_per_region == 0:
        return []
    cell = t.target[positive]
    viewer = t.viewer[positive]
    stamp = t.updated_at[positive]
    region = t.region[positive]
    regions = trend_regions(t.regions)
    pooled = regions.index(GLOBAL_REGION)
    out: Candidates = []
    for r in range(len(regions)):
        mask = np.ones(len(cell), dtype=bool) if r == pooled else region == r
        out.append(_region_candidates(cell[mask], viewer[mask], stamp[mask], config, now))
    return out


def pick_trends(
    regions: list[str], parts: Sequence[Candidates], config: FederationConfig
) -> list[Trend]:
    """The top ``trends_per_region`` cells of each region, over the candidates of one or
    more tables that hold disjoint cells."""
    found = [c for c in parts if c]
    trends: list[Trend] = []
    for r, name in enumerate(regions if found else []):
        cells = np.concatenate([c[r][0] for c in found])
        score = np.concatenate([c[r][1] for c in found])
        best = np.lexsort((cells, -score))[: config.trends_per_region]
        trends.extend(
            Trend(cell=int(cells[i]), region=name, score=round(float(score[i]), 4)) for i in best
        )
    return trends


def _region_candidates(
    cell: I64, viewer: I64, stamp: F64, config: FederationConfig, now: float
) -> tuple[I64, F64]:
    if len(cell) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    span = int(viewer.max()) + 1
    key = cell.astype(np.int64) * span + viewer
    order = np.lexsort((-stamp, key))  # per (cell, viewer): newest first
    head = np.ones(len(order), dtype=bool)
    head[1:] = key[order][1:] != key[order][:-1]
    chosen = order[head]
    cells, slot = np.unique(cell[chosen], return_inverse=True)
    age = np.maximum(now - stamp[chosen], 0.0)
    h, baseline = config.trend_half_life_s, config.trend_baseline_half_life_s
    filled = (
        -math.expm1(-config.max_age_s / h * LN2),
        -math.expm1(-config.max_age_s / baseline * LN2),
    )
    fast = np.bincount(slot, weights=np.exp2(-age / h), minlength=len(cells))
    slow = np.bincount(slot, weights=np.exp2(-age / baseline), minlength=len(cells))
    viewers = np.bincount(slot, minlength=len(cells))
    # What F would be for a steady stream with this baseline, over the live window.
    steady = slow * (h * filled[0]) / (baseline * filled[1])
    score = fast - steady
    lifted = fast >= config.trend_min_lift * steady
    eligible = np.flatnonzero(lifted & (score > 0) & (viewers >= config.trend_min_viewers))
    return cells[eligible].astype(np.int64), score[eligible]
