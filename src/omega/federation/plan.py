"""The release a round would publish, planned from what it read (pure: no I/O).

``run_round`` (``omega.federation.rounds``) reads a :class:`RoundInputs` from storage,
calls :func:`plan_release`, and commits the :class:`ReleasePlan` if it changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from omega.federation._table import build_table
from omega.federation.config import FederationConfig
from omega.federation.consolidate import ConsolidationStats, consolidate_table
from omega.federation.engines import Engine
from omega.federation.partitioned import consolidate_partitioned
from omega.federation.popularity import diff_popular, popular_scores
from omega.federation.trends import detect_trends_table
from omega.protocol.messages import ConsolidatedPattern, ItemScore, Trend
from omega.storage.base import Codebook, LivePattern, SupportCounts

__all__ = ["ReleasePlan", "RoundInputs", "diff_release", "plan_release"]


@dataclass(frozen=True, slots=True)
class RoundInputs:
    """What a round reads before it plans: the live patterns, the release it builds on
    (``base_version``), and the popularity counts."""

    codebook: Codebook
    live: list[LivePattern]
    base_version: int
    current: list[ConsolidatedPattern]
    current_trends: list[Trend]
    popularity: list[SupportCounts]
    current_popular: list[ItemScore]


@dataclass(frozen=True, slots=True)
class ReleasePlan:
    """What a round would publish on top of release ``base_version``: computed, not written."""

    base_version: int
    #: Every cluster that passes consolidation this round (released or not re-sent).
    patterns: list[ConsolidatedPattern]
    stats: ConsolidationStats
    trends: list[Trend]
    #: The changes against the current release: only these travel in the commit.
    upserted: list[ConsolidatedPattern]
    removed: list[str]
    popular: list[ItemScore]
    trends_changed: bool

    @property
    def changed(self) -> bool:
        """Whether committing this plan would publish anything."""
        return bool(self.upserted or self.removed or self.popular or self.trends_changed)


def plan_release(
    inputs: RoundInputs,
    groups: npt.NDArray[np.int64],
    config: FederationConfig,
    *,
    now: float,
    engine: Engine | None = None,
) -> ReleasePlan:
    """Consolidate, detect trends, rank popularity, and diff each against the current
    release. ``groups`` is the codebook's cell grouping (``CellGroups.for_codebook``).
    With an ``engine``, consolidation and trends run on it in partitions by target
    content group (``omega.federation.partitioned``): the same plan, computed elsewhere."""
    codebook_id = inputs.codebook.codebook_id
    table = build_table(inputs.live, config, k=len(groups), now=now)
    if engine is None:
        patterns, stats = consolidate_table(table, groups, config, codebook_id=codebook_id)
        trends = detect_trends_table(table, config, now=now)
    else:
        patterns, stats, trends = consolidate_partitioned(
            table, groups, config, codebook_id=codebook_id, now=now, engine=engine
        )
    upserted, removed = diff_release(inputs.current, patterns, tolerance=config.change_tolerance)
    ranked = popular_scores(
        inputs.popularity,
        inputs.codebook.item_ids,
        top=config.popular_top,
        reference=config.popular_reference,
    )
    popular = diff_popular(inputs.current_popular, ranked, tolerance=config.popular_tolerance)
    return ReleasePlan(
        base_version=inputs.base_version,
        patterns=patterns,
        stats=stats,
        trends=trends,
        upserted=upserted,
        removed=removed,
        popular=popular,
        trends_changed=_trends_changed(inputs.current_trends, trends, config.change_tolerance),
    )


def diff_release(
    current: list[ConsolidatedPattern], new: list[ConsolidatedPattern], *, tolerance: float
) -> tuple[list[ConsolidatedPattern], list[str]]:
    """Upserts (new, or moved by more than ``tolerance``) and removals (no longer passing)."""
    by_id = {p.id: p for p in current}
    upserted = [p for p in new if _changed(by_id.get(p.id), p, tolerance)]
    keep = {p.id for p in new}
    return upserted, sorted(pid for pid in by_id if pid not in keep)


def _moved(old: float, new: float, tolerance: float) -> bool:
    return abs(new - old) > tolerance * max(abs(old), 1e-9)


def _changed(old: ConsolidatedPattern | None, new: ConsolidatedPattern, tolerance: float) -> bool:
    if old is None:
        return True
    return (
        old.cells != new.cells
        or old.task != new.task
        or old.context != new.context
        or _moved(old.weight, new.weight, tolerance)
        or abs(old.success_rate - new.success_rate) > tolerance
    )


def _trends_changed(old: list[Trend], new: list[Trend], tolerance: float) -> bool:
    if [(t.region, t.cell) for t in old] != [(t.region, t.cell) for t in new]:
        return True
    return any(_moved(a.score, b.score, tolerance) for a, b in zip(old, new, strict=True))
