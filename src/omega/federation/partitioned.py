"""A round's consolidation and trends split by target content group, on an engine.

Why the target group keeps consensus exact: every figure consolidation computes is per
cluster, and a cluster's key (task, context, content groups) fixes its *target* group
(b's group for a transition a → b, else its one cell's group). Its votes are its own
rows; its agreement counts the viewers holding any pattern whose target is in that group
(``consolidate`` step 4). Both sets live in the rows whose target is in the group, so a
partition holding whole target groups computes each of its clusters exactly as the
whole table would. Trends are per cell (a cell is in one group) and only the top of each
region is global: each partition hands back every eligible cell with its unrounded score
and ``pick_trends`` ranks the union.

Rows keep their order and their viewer and region indices (the table is built once, in
the caller), so sums accumulate in the same order and the release is identical, bit for
bit, to ``plan_release`` without an engine (``tests/federation/test_fed_partitioned.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from omega.federation._table import I64, PatternTable
from omega.federation.config import FederationConfig
from omega.federation.consolidate import ConsolidationStats, consolidate_table
from omega.federation.engines import Engine
from omega.federation.trends import Candidates, pick_trends, trend_candidates, trend_regions
from omega.protocol.messages import ConsolidatedPattern, Trend

__all__ = ["consolidate_partitioned", "split_by_target"]

#: Partitions per engine worker: a few more than workers so one large group does not
#: leave the other workers idle.
PARTS_PER_WORKER = 2


@dataclass(frozen=True, slots=True)
class _Part:
    """One partition's work, as it travels to an engine worker."""

    table: PatternTable
    groups: I64
    config: FederationConfig
    codebook_id: str
    now: float


@dataclass(frozen=True, slots=True)
class _PartResult:
    patterns: list[ConsolidatedPattern]
    stats: ConsolidationStats
    trends: Candidates


def _plan_part(part: _Part) -> _PartResult:
    """Consolidate and find trend candidates in one partition (runs on a worker)."""
    patterns, stats = consolidate_table(
        part.table, part.groups, part.config, codebook_id=part.codebook_id
    )
    trends = trend_candidates(part.table, part.config, now=part.now)
    return _PartResult(patterns, stats, trends)


def consolidate_partitioned(
    table: PatternTable,
    groups: I64,
    config: FederationConfig,
    *,
    codebook_id: str,
    now: float,
    engine: Engine,
) -> tuple[list[ConsolidatedPattern], ConsolidationStats, list[Trend]]:
    """``consolidate_table`` and ``detect_trends_table`` over ``table``, run as partitions
    on ``engine``; the same result as running them on the whole table."""
    parts = split_by_target(table, groups, engine.workers * PARTS_PER_WORKER)
    work = [_Part(p, groups, config, codebook_id, now) for p in parts]
    results = engine.map(_plan_part, work)
    patterns = sorted((p for r in results for p in r.patterns), key=lambda p: p.id)
    stats = ConsolidationStats(
        received=table.received,
        invalid=table.invalid,
        low_quality=table.low_quality,
        clusters=sum(r.stats.clusters for r in results),
        released=sum(r.stats.released for r in results),
        too_few_viewers=sum(r.stats.too_few_viewers for r in results),
        disputed=sum(r.stats.disputed for r in results),
    )
    regions = trend_regions(table.regions)
    trends = pick_trends(regions, [r.trends for r in results], config)
    return patterns, stats, trends


def split_by_target(table: PatternTable, groups: I64, parts: int) -> list[PatternTable]:
    """``table``'s rows in at most ``parts`` tables, each holding whole target content
    groups (balanced by rows, largest group first); rows keep their order and indices.
    The split tables count no received, invalid or low-quality patterns (the caller's
    table does)."""
    target_group = groups[table.target]
    present, rows = np.unique(target_group, return_counts=True)
    load = np.zeros(max(1, min(parts, len(present))), dtype=np.int64)
    owner = np.zeros(len(present), dtype=np.int64)
    for g in np.argsort(-rows, kind="stable").tolist():
        owner[g] = int(np.argmin(load))
        load[owner[g]] += rows[g]
    row_part = owner[np.searchsorted(present, target_group)]
    return [_take(table, np.flatnonzero(row_part == p)) for p in range(len(load))]


def _take(table: PatternTable, rows: I64) -> PatternTable:
    return replace(
        table,
        viewer=table.viewer[rows],
        region=table.region[rows],
        task=table.task[rows],
        context=table.context[rows],
        cell0=table.cell0[rows],
        cell1=table.cell1[rows],
        success=table.success[rows],
        support=table.support[rows],
        updated_at=table.updated_at[rows],
        received=0,
        invalid=0,
        low_quality=0,
    )
