"""Consolidation: from every viewer's live patterns to the patterns a release carries.

Pure (no I/O). Steps, each vectorised over all patterns:

1. **Quality filter.** Positive patterns (preference / recommendation / discovery) need
   success ≥ ``min_quality``. Behaviour patterns describe abandonment, so their quality
   is ``1 - success`` and they need success ≤ ``1 - min_quality``. Patterns below it are
   dropped, not counted as dissent: devices never push them, so only faulty or hostile
   clients send them, and counting them would hand sign-flippers a veto. (With
   ``behaviour_rate="abandonment"`` a behaviour rate is read as 1 - success.)
2. **Clustering.** Cells whose centroids have cosine ≥ ``similarity`` form a content group
   (``omega.federation.cells``); patterns with the same task, context and groups form one
   cluster, so every pair in a cluster is ≥ ``similarity`` similar.
3. **Bounded influence.** One vote per viewer per cluster: a viewer's patterns in a cluster
   combine into one (support-weighted success, summed support clipped to
   ``support_cap``). A vote weighs ``quality × clipped support``.
4. **Consensus.** A cluster's *target* is the content group it makes a claim about (b for
   a transition a → b, else its one cell). The viewers with an opinion on the target are
   those holding any pattern on it, in any context: positive patterns say they succeed
   with it (success ≥ ``min_quality``), behaviour patterns that they abandon it (success
   ≤ 1 - ``min_quality``). *Agreement* is the share of them on the same side of
   ``min_quality`` as the cluster's fused value (a viewer holding both counts on both
   sides). Released only with ≥ ``min_viewers`` distinct backers *and* agreement ≥
   ``min_agreement``. So a coalition promoting content that honest viewers abandon needs
   more than 66% of everyone with an opinion on it, not just 3 accounts; it is measured
   over all contexts so that an unusual context does not dodge the dissent.
5. **Fusion.** Robust, quality-weighted (``omega.federation.fusion``) over the votes.
   ``support`` is the fused per-viewer support × backers.
6. **Weight** — what devices score with: ``q × min(1, ln(1+n) / ln(1+n_sat))`` where q is
   the fused quality and n the distinct backers. It grows with independent evidence but
   saturates at ``viewers_saturation``, so no coalition lifts a cluster above what that
   many honest viewers give it.
7. **Ids** are a hash of (codebook, task, context, content groups), so successive rounds
   update a cluster instead of duplicating it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from omega.federation._table import (
    BEHAVIOUR,
    CONTEXTS,
    F64,
    I64,
    TASKS,
    PatternTable,
    build_table,
)
from omega.federation.cells import group_cells
from omega.federation.config import FederationConfig
from omega.federation.fusion import fuse_grouped
from omega.protocol.messages import ConsolidatedPattern
from omega.storage.base import LivePattern

__all__ = ["ConsolidationStats", "consolidate", "consolidate_table", "pattern_id"]


@dataclass(frozen=True, slots=True)
class ConsolidationStats:
    received: int
    invalid: int
    low_quality: int
    clusters: int
    released: int
    too_few_viewers: int
    disputed: int


def pattern_id(codebook_id: str, task: str, context: int, groups: tuple[int, ...]) -> str:
    """Deterministic id of a released cluster."""
    ctx = CONTEXTS[context]
    text = f"{codebook_id}|{task}|{ctx.time_bucket}|{ctx.day_type}|{','.join(map(str, groups))}"
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def consolidate(
    live: Sequence[LivePattern],
    centroids: npt.NDArray[np.floating],
    config: FederationConfig,
    *,
    now: float,
    codebook_id: str = "",
    groups: I64 | None = None,
) -> list[ConsolidatedPattern]:
    """The patterns to release (version 0; the round stamps the version), sorted by id.

    ``groups`` (from ``group_cells``) may be passed to reuse the cell grouping of an
    unchanged codebook."""
    if groups is None:
        groups = group_cells(centroids, config.similarity)
    table = build_table(live, config, k=len(groups), now=now)
    return consolidate_table(table, groups, config, codebook_id=codebook_id)[0]


def consolidate_table(
    table: PatternTable, groups: I64, config: FederationConfig, *, codebook_id: str
) -> tuple[list[ConsolidatedPattern], ConsolidationStats]:
    """Steps 2-7 of the module docstring over a built table (step 1 is ``build_table``)."""
    n_viewers = max(len(table.viewers), 1)
    if len(table) == 0:
        return [], _stats(table, clusters=0, released=0, too_few=0, disputed=0)
    clusters = _Clusters.of(table, groups)
    votes = _Votes.of(table, clusters, n_viewers=n_viewers, support_cap=config.support_cap)
    agreement = _agreement(table, clusters, n_cells=len(groups), n_viewers=n_viewers)
    enough = votes.backers >= config.min_viewers
    passing = enough & (agreement >= config.min_agreement)
    stats = _stats(
        table,
        clusters=len(clusters),
        released=int(passing.sum()),
        too_few=int((~enough).sum()),
        disputed=int((enough & ~passing).sum()),
    )
    if not passing.any():
        return [], stats
    released = _release(
        table,
        clusters,
        votes,
        np.flatnonzero(passing),
        config,
        n_cells=len(groups),
        n_viewers=n_viewers,
        codebook_id=codebook_id,
    )
    return released, stats


def _stats(
    table: PatternTable, *, clusters: int, released: int, too_few: int, disputed: int
) -> ConsolidationStats:
    return ConsolidationStats(
        table.received, table.invalid, table.low_quality, clusters, released, too_few, disputed
    )


@dataclass(frozen=True, slots=True)
class _Clusters:
    """The table's rows grouped by (task, context, content groups): step 2."""

    group0: I64  # per row: the content group of its first cell
    group1: I64  # per row: the content group of its second cell, or -1
    first_row: I64  # per cluster: one of its rows (they share task, context, groups)
    of_row: I64  # per row: its cluster
    positive: npt.NDArray[np.bool_]  # per cluster: not a behaviour cluster

    @classmethod
    def of(cls, table: PatternTable, groups: I64) -> _Clusters:
        n_cells, n_contexts = len(groups), len(CONTEXTS)
        group0 = groups[table.cell0]
        group1 = np.where(table.cell1 >= 0, groups[np.maximum(table.cell1, 0)], -1)
        key = ((table.task * n_contexts + table.context) * n_cells + group0) * (n_cells + 1)
        key += group1 + 1
        _, first_row, of_row = np.unique(key, return_index=True, return_inverse=True)
        positive = table.task[first_row] != BEHAVIOUR
        return cls(group0, group1, first_row, of_row.reshape(-1), positive)

    def __len__(self) -> int:
        return len(self.first_row)


@dataclass(frozen=True, slots=True)
class _Votes:
    """One vote per viewer per cluster, its support clipped: step 3."""

    cluster: I64  # per vote: its cluster
    success: F64  # per vote: the viewer's support-weighted success in the cluster
    support: F64  # per vote: the viewer's summed support, clipped to ``support_cap``
    backers: I64  # per cluster: its votes (distinct viewers)

    @classmethod
    def of(
        cls, table: PatternTable, clusters: _Clusters, *, n_viewers: int, support_cap: int
    ) -> _Votes:
        vote_keys, row_vote = np.unique(
            clusters.of_row * n_viewers + table.viewer, return_inverse=True
        )
        row_vote = row_vote.reshape(-1)
        vote_cluster = vote_keys // n_viewers
        summed = np.bincount(row_vote, weights=table.support)
        success = np.bincount(row_vote, weights=table.support * table.success) / summed
        support = np.minimum(summed, float(support_cap))
        backers = np.bincount(vote_cluster, minlength=len(clusters))
        return cls(vote_cluster, success, support, backers)


def _agreement(table: PatternTable, clusters: _Clusters, *, n_cells: int, n_viewers: int) -> F64:
    """Per cluster, the share of viewers with an opinion on its target group who are on
    its side (step 4). Counted in every context: an attacker must not dodge dissent by
    picking an unusual one."""
    agreeing, opinions = _opinions(table, clusters, n_cells=n_cells, n_viewers=n_viewers)
    agreement: F64 = agreeing / opinions
    return agreement


def _opinions(
    table: PatternTable, clusters: _Clusters, *, n_cells: int, n_viewers: int
) -> tuple[I64, I64]:
    """Per cluster, the viewers on its side and all the viewers with an opinion on its
    target group (a viewer holding both kinds of pattern counts on both sides)."""
    row_target = np.where(clusters.group1 >= 0, clusters.group1, clusters.group0)
    opinion = row_target * n_viewers + table.viewer
    row_positive = table.task != BEHAVIOUR
    likes = np.bincount(np.unique(opinion[row_positive]) // n_viewers, minlength=n_cells)
    quits = np.bincount(np.unique(opinion[~row_positive]) // n_viewers, minlength=n_cells)
    target = row_target[clusters.first_row]
    agreeing: I64 = np.where(clusters.positive, likes[target], quits[target])
    opinions: I64 = likes[target] + quits[target]
    return agreeing, opinions


def _release(
    table: PatternTable,
    clusters: _Clusters,
    votes: _Votes,
    released: I64,
    config: FederationConfig,
    *,
    n_cells: int,
    n_viewers: int,
    codebook_id: str,
) -> list[ConsolidatedPattern]:
    """The ``released`` clusters as patterns (steps 5-7), sorted by id."""
    # Index among the released clusters, -1 for the others.
    rank = np.full(len(clusters), -1, dtype=np.int64)
    rank[released] = np.arange(len(released))
    fused, per_viewer = _fuse(votes, clusters.positive, rank, len(released), config)
    taken = rank[clusters.of_row] >= 0
    row_rank = rank[clusters.of_row[taken]]
    viewer = table.viewer[taken]
    cell0 = _mode_cell(row_rank, table.cell0[taken], viewer, len(released), n_cells, n_viewers)
    cell1 = _mode_cell(row_rank, table.cell1[taken], viewer, len(released), n_cells, n_viewers)
    saturation = math.log1p(config.viewers_saturation)
    flip = config.behaviour_rate == "abandonment"
    out: list[ConsolidatedPattern] = []
    for index, cluster in enumerate(released.tolist()):
        row = int(clusters.first_row[cluster])
        task = TASKS[int(table.task[row])]
        backers = int(votes.backers[cluster])
        positive = bool(clusters.positive[cluster])
        quality = float(fused[index]) if positive else 1.0 - float(fused[index])
        first, second = int(cell0[index]), int(cell1[index])
        group0, group1 = int(clusters.group0[row]), int(clusters.group1[row])
        out.append(
            ConsolidatedPattern(
                id=pattern_id(
                    codebook_id,
                    task,
                    int(table.context[row]),
                    (group0,) if group1 < 0 else (group0, group1),
                ),
                task=task,
                cells=(first,) if second < 0 else (first, second),
                context=CONTEXTS[int(table.context[row])],
                success_rate=round(float(fused[index]) if positive or not flip else quality, 4),
                support=max(1, round(float(per_viewer[index]) * backers)),
                viewers=backers,
                weight=round(quality * min(1.0, math.log1p(backers) / saturation), 6),
                version=0,
            )
        )
    out.sort(key=lambda p: p.id)
    return out


def _fuse(
    votes: _Votes,
    positive: npt.NDArray[np.bool_],
    rank: I64,
    n_released: int,
    config: FederationConfig,
) -> tuple[F64, F64]:
    """Per released cluster: the fused success (weighted by quality × clipped support) and
    the fused per-viewer support (step 5). Only the released clusters' votes are fused."""
    taken = rank[votes.cluster] >= 0
    vote_rank = rank[votes.cluster[taken]]
    success = votes.success[taken]
    quality = np.where(positive[votes.cluster[taken]], success, 1.0 - success)
    clipped = votes.support[taken]
    fused = fuse_grouped(
        vote_rank,
        success,
        quality * clipped,
        clusters=n_released,
        rule=config.fusion,
        trim=config.trim,
    )
    per_viewer = fuse_grouped(
        vote_rank,
        clipped,
        np.ones(len(vote_rank)),
        clusters=n_released,
        rule=config.fusion,
        trim=config.trim,
    )
    return fused, per_viewer


def _mode_cell(
    cluster: I64, cells: I64, viewer: I64, n_clusters: int, n_cells: int, n_viewers: int
) -> I64:
    """Per cluster, the cell backed by the most distinct viewers (ties: smallest cell)."""
    triples = np.unique((cluster * (n_cells + 1) + (cells + 1)) * n_viewers + viewer)
    pairs, counts = np.unique(triples // n_viewers, return_counts=True)
    owner = pairs // (n_cells + 1)
    cell = pairs % (n_cells + 1) - 1
    order = np.lexsort((cell, -counts, owner))
    head = np.ones(len(order), dtype=bool)
    head[1:] = owner[order][1:] != owner[order][:-1]
    best = np.full(n_clusters, -1, dtype=np.int64)
    best[owner[order][head]] = cell[order][head]
    return best
