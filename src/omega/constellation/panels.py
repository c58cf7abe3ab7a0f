"""The dashboard's panels that are not time series, computed from what the store holds:
the release's pattern quality per cell and context, consensus health, trends by region,
and the round history. Pure functions of their inputs (the route reads the store).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import get_args

import msgspec

from omega.constellation.dashboard import RoundRecord
from omega.protocol.messages import ConsolidatedPattern, DayType, TimeBucket, Trend

__all__ = [
    "CONTEXTS",
    "ConsensusHealth",
    "Heatmap",
    "RegionTrends",
    "RoundPoint",
    "consensus_health",
    "heatmap",
    "round_points",
    "trends_by_region",
]

#: Every (time bucket, day type) a pattern may be about, as "evening/weekend".
CONTEXTS: tuple[str, ...] = tuple(
    f"{time}/{day}" for time in get_args(TimeBucket) for day in get_args(DayType)
)


class Heatmap(msgspec.Struct, frozen=True, kw_only=True):
    """Released pattern quality: ``success[i][j]`` is the support-weighted success rate
    of the released patterns over cell ``cells[j]`` in context ``contexts[i]`` (null where
    none is released), ``support[i][j]`` their summed support."""

    version: int
    cells: list[int]
    contexts: list[str]
    success: list[list[float | None]]
    support: list[list[int]]


def heatmap(version: int, patterns: Iterable[ConsolidatedPattern], k: int) -> Heatmap:
    """The quality map of a release over a codebook of ``k`` cells."""
    rows = {name: i for i, name in enumerate(CONTEXTS)}
    weighted = [[0.0] * k for _ in CONTEXTS]
    support = [[0] * k for _ in CONTEXTS]
    for p in patterns:
        row = rows[f"{p.context.time_bucket}/{p.context.day_type}"]
        for cell in set(p.cells):
            if 0 <= cell < k:
                weighted[row][cell] += p.success_rate * p.support
                support[row][cell] += p.support
    success: list[list[float | None]] = [
        [w / s if s else None for w, s in zip(wrow, srow, strict=True)]
        for wrow, srow in zip(weighted, support, strict=True)
    ]
    return Heatmap(
        version=version,
        cells=list(range(k)),
        contexts=list(CONTEXTS),
        success=success,
        support=support,
    )


class ConsensusHealth(msgspec.Struct, frozen=True, kw_only=True):
    """The last round's clusters: ``released``, withheld for ``too_few_viewers`` (fewer
    than ``min_viewers`` distinct viewers) or ``disputed`` (agreement below
    ``min_agreement``); patterns dropped before clustering (``low_quality``,
    ``invalid``); and ``trimmed_votes``: votes of the current release's clusters that the
    trimmed mean dropped as outliers (``trim`` of each cluster's votes at each end). All
    counts are null before this server ran a round that consolidated."""

    round_version: int | None
    clusters: int | None
    released: int | None
    too_few_viewers: int | None
    disputed: int | None
    low_quality: int | None
    invalid: int | None
    trimmed_votes: int
    min_viewers: int
    min_agreement: float
    fusion: str
    trim: float


def consensus_health(
    last: RoundRecord | None,
    released: Sequence[ConsolidatedPattern],
    *,
    min_viewers: int,
    min_agreement: float,
    fusion: str,
    trim: float,
) -> ConsensusHealth:
    """Consensus health from the last consolidating round and the current release."""
    stats = last.stats if last is not None else None

    def count(name: str) -> int | None:
        value = stats.get(name) if stats is not None else None
        return int(value) if isinstance(value, (int, float)) else None

    trimmed = 0
    if fusion == "trimmed_mean":  # one vote per viewer; floor(trim · n) cut at each end
        trimmed = sum(2 * math.floor(trim * p.viewers) for p in released)
    return ConsensusHealth(
        round_version=last.version if last is not None else None,
        clusters=count("clusters"),
        released=count("released"),
        too_few_viewers=count("too_few_viewers"),
        disputed=count("disputed"),
        low_quality=count("low_quality"),
        invalid=count("invalid"),
        trimmed_votes=trimmed,
        min_viewers=min_viewers,
        min_agreement=min_agreement,
        fusion=fusion,
        trim=trim,
    )


class RegionTrends(msgspec.Struct, frozen=True, kw_only=True):
    """A region's current trends: how many cells rise, the strongest score and the top
    cells (best first, at most five)."""

    region: str
    trends: int
    top_score: float
    top_cells: list[int]


def trends_by_region(trends: Iterable[Trend]) -> list[RegionTrends]:
    """Current trends grouped by region, the regions with the strongest trend first."""
    regions: dict[str, list[Trend]] = {}
    for trend in trends:
        regions.setdefault(trend.region, []).append(trend)
    out = []
    for region, found in regions.items():
        found.sort(key=lambda t: t.score, reverse=True)
        out.append(
            RegionTrends(
                region=region,
                trends=len(found),
                top_score=found[0].score,
                top_cells=[t.cell for t in found[:5]],
            )
        )
    out.sort(key=lambda r: r.top_score, reverse=True)
    return out


class RoundPoint(msgspec.Struct, frozen=True, kw_only=True):
    """One round of the history: when it ended, its duration, live patterns decided per
    second, what it released (patterns, trends over every region) and its status."""

    at: float
    version: int
    status: str
    seconds: float
    patterns_per_s: float
    live: int
    released: int
    reports: int
    trends: int


def round_points(records: Iterable[RoundRecord]) -> list[RoundPoint]:
    return [
        RoundPoint(
            at=r.at,
            version=r.version,
            status=r.status,
            seconds=r.seconds,
            patterns_per_s=r.patterns_per_s,
            live=r.live,
            released=r.released,
            reports=r.reports,
            trends=r.trends,
        )
        for r in records
    ]
