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

I64 = npt.NDArray[np.int64]


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


def _mode_cell(cluster: I64, cells: I64, viewer: I64, clusters: int, k: int, v: int) -> I64:
    """Per cluster, the cell backed by the most distinct viewers (ties: smallest cell)."""
    triples = np.unique((cluster * (k + 1) + (cells + 1)) * v + viewer)
    pairs, counts = np.unique(triples // v, return_counts=True)
    owner = pairs // (k + 1)
    cell = pairs % (k + 1) - 1
    order = np.lexsort((cell, -counts, owner))
    head = np.ones(len(order), dtype=bool)
    head[1:] = owner[order][1:] != owner[order][:-1]
    best = np.full(clusters, -1, dtype=np.int64)
    best[owner[order][head]] = cell[order][head]
    return best


def consolidate_table(
    t: PatternTable, groups: I64, config: FederationConfig, *, codebook_id: str
) -> tuple[list[ConsolidatedPattern], ConsolidationStats]:
    k, v, n_ctx = len(groups), max(len(t.viewers), 1), len(CONTEXTS)

    def stats(clusters: int, released: int, few: int, disputed: int) -> ConsolidationStats:
        return ConsolidationStats(
            t.received, t.invalid, t.low_quality, clusters, released, few, disputed
        )

    if len(t) == 0:
        return [], stats(0, 0, 0, 0)
    g0 = groups[t.cell0]
    g1 = np.where(t.cell1 >= 0, groups[np.maximum(t.cell1, 0)], -1)
    key = ((t.task * n_ctx + t.context) * k + g0) * (k + 1) + (g1 + 1)
    _, first_row, row_cluster = np.unique(key, return_index=True, return_inverse=True)
    row_cluster = row_cluster.reshape(-1)
    n_clusters = len(first_row)

    # One vote per viewer per cluster, support clipped.
    vote_keys, row_vote = np.unique(row_cluster * v + t.viewer, return_inverse=True)
    row_vote = row_vote.reshape(-1)
    vote_cluster = vote_keys // v
    summed = np.bincount(row_vote, weights=t.support)
    vote_success = np.bincount(row_vote, weights=t.support * t.success) / summed
    vote_support = np.minimum(summed, float(config.support_cap))
    backers = np.bincount(vote_cluster, minlength=n_clusters)

    # Agreement is about the content: every viewer with an opinion on the target group,
    # in any context (an attacker must not dodge dissent by picking an unusual context).
    c_positive = t.task[first_row] != BEHAVIOUR
    row_group = np.where(g1 >= 0, g1, g0)
    opinion = row_group * v + t.viewer
    row_positive = t.task != BEHAVIOUR
    likes = np.bincount(np.unique(opinion[row_positive]) // v, minlength=k)
    quits = np.bincount(np.unique(opinion[~row_positive]) // v, minlength=k)
    c_group = row_group[first_row]
    agreeing = np.where(c_positive, likes[c_group], quits[c_group])
    agreement = agreeing / (likes[c_group] + quits[c_group])

    enough = backers >= config.min_viewers
    passing = enough & (agreement >= config.min_agreement)
    stats_out = stats(
        n_clusters, int(passing.sum()), int((~enough).sum()), int((enough & ~passing).sum())
    )
    if not passing.any():
        return [], stats_out

    # Fuse only the released clusters' votes.
    released = np.flatnonzero(passing)
    remap = np.full(n_clusters, -1, dtype=np.int64)
    remap[released] = np.arange(len(released))
    take = remap[vote_cluster] >= 0
    fc = remap[vote_cluster[take]]
    success = vote_success[take]
    quality = np.where(c_positive[vote_cluster[take]], success, 1.0 - success)
    clipped = vote_support[take]
    fused = fuse_grouped(
        fc, success, quality * clipped, clusters=len(released), rule=config.fusion, trim=config.trim
    )
    per_viewer = fuse_grouped(
        fc, clipped, np.ones(len(fc)), clusters=len(released), rule=config.fusion, trim=config.trim
    )

    rows = remap[row_cluster] >= 0
    rc = remap[row_cluster[rows]]
    cell0 = _mode_cell(rc, t.cell0[rows], t.viewer[rows], len(released), k, v)
    cell1 = _mode_cell(rc, t.cell1[rows], t.viewer[rows], len(released), k, v)
    saturation = math.log1p(config.viewers_saturation)
    flip = config.behaviour_rate == "abandonment"
    out: list[ConsolidatedPattern] = []
    for i, c in enumerate(released.tolist()):
        row = int(first_row[c])
        task = TASKS[int(t.task[row])]
        n = int(backers[c])
        q = float(fused[i]) if c_positive[c] else 1.0 - float(fused[i])
        cells = (int(cell0[i]),) if cell1[i] < 0 else (int(cell0[i]), int(cell1[i]))
        ids = (int(g0[row]),) if g1[row] < 0 else (int(g0[row]), int(g1[row]))
        out.append(
            ConsolidatedPattern(
                id=pattern_id(codebook_id, task, int(t.context[row]), ids),
                task=task,
                cells=cells,
                context=CONTEXTS[int(t.context[row])],
                success_rate=round(float(fused[i]) if c_positive[c] or not flip else q, 4),
                support=max(1, round(float(per_viewer[i]) * n)),
                viewers=n,
                weight=round(q * min(1.0, math.log1p(n) / saturation), 6),
                version=0,
            )
        )
    out.sort(key=lambda p: p.id)
    return out, stats_out
