"""Why a cluster is released or withheld: the consensus rules of ``consolidate``, for one
pattern id, in words an operator can read.

Pure (no I/O). :func:`explain_consensus` rebuilds the clusters a round would build from
the live patterns (the same filter, content groups, one vote per viewer and agreement as
``omega.federation.consolidate``, whose private steps it reuses so the two cannot
drift), finds the cluster whose released id is ``pattern_id`` and reports its voters,
the viewers with an opinion on its target, the agreement and each rule it passes or
fails. Contributions still pending (pushed, not yet folded by a round) are not in the
live set, so they do not count here either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from omega.federation._table import CONTEXTS, TASKS, build_table
from omega.federation.cells import group_cells
from omega.federation.config import FederationConfig
from omega.federation.consolidate import _Clusters, _opinions, _Votes, pattern_id
from omega.protocol.messages import PatternContext, TaskType
from omega.storage.base import LivePattern

__all__ = ["MAX_VOTER_IDS", "ConsensusReport", "explain_consensus"]

#: Voter ids listed in a report at most (the count is always whole).
MAX_VOTER_IDS = 50


@dataclass(frozen=True, slots=True)
class ConsensusReport:
    """One cluster as a round would judge it now.

    ``voters``: distinct viewers backing the cluster (one vote each); ``opinions``: the
    viewers holding any quality-passing pattern on its target content group, in any
    context; ``agreeing``: those of them on the cluster's side; ``agreement`` their
    share. ``released_by_rules``: whether a round run now would release it."""

    pattern_id: str
    task: TaskType
    context: PatternContext
    groups: tuple[int, ...]
    voters: int
    voter_ids: tuple[str, ...]
    opinions: int
    agreeing: int
    agreement: float
    min_viewers: int
    min_agreement: float
    released_by_rules: bool
    reasons: tuple[str, ...]


def explain_consensus(
    live: Sequence[LivePattern],
    centroids: npt.NDArray[np.floating],
    config: FederationConfig,
    *,
    now: float,
    codebook_id: str,
    wanted: str,
) -> ConsensusReport | None:
    """The report on the cluster whose id is ``wanted``; None if no live pattern that
    passes the quality filter makes such a cluster."""
    groups = group_cells(centroids, config.similarity)
    table = build_table(live, config, k=len(groups), now=now)
    if len(table) == 0:
        return None
    clusters = _Clusters.of(table, groups)
    found = _find(table.task, table.context, clusters, codebook_id, wanted)
    if found is None:
        return None
    n_viewers = max(len(table.viewers), 1)
    votes = _Votes.of(table, clusters, n_viewers=n_viewers, support_cap=config.support_cap)
    agreeing, opinions = _opinions(table, clusters, n_cells=len(groups), n_viewers=n_viewers)
    row = int(clusters.first_row[found])
    backers = sorted({table.viewers[v] for v in table.viewer[clusters.of_row == found].tolist()})
    voters = int(votes.backers[found])
    share = float(agreeing[found]) / float(opinions[found])
    enough = voters >= config.min_viewers
    agreed = share >= config.min_agreement
    return ConsensusReport(
        pattern_id=wanted,
        task=TASKS[int(table.task[row])],
        context=CONTEXTS[int(table.context[row])],
        groups=_groups_of(clusters, row),
        voters=voters,
        voter_ids=tuple(backers[:MAX_VOTER_IDS]),
        opinions=int(opinions[found]),
        agreeing=int(agreeing[found]),
        agreement=round(share, 4),
        min_viewers=config.min_viewers,
        min_agreement=config.min_agreement,
        released_by_rules=enough and agreed,
        reasons=_reasons(voters, int(agreeing[found]), int(opinions[found]), config),
    )


def _find(
    task: npt.NDArray[np.int64],
    context: npt.NDArray[np.int64],
    clusters: _Clusters,
    codebook_id: str,
    wanted: str,
) -> int | None:
    """The index of the cluster whose released id is ``wanted``, if one is."""
    for index, row in enumerate(clusters.first_row.tolist()):
        name = pattern_id(
            codebook_id, TASKS[int(task[row])], int(context[row]), _groups_of(clusters, row)
        )
        if name == wanted:
            return index
    return None


def _groups_of(clusters: _Clusters, row: int) -> tuple[int, ...]:
    first, second = int(clusters.group0[row]), int(clusters.group1[row])
    return (first,) if second < 0 else (first, second)


def _reasons(
    voters: int, agreeing: int, opinions: int, config: FederationConfig
) -> tuple[str, ...]:
    """One sentence per consensus rule, saying whether the cluster meets it."""
    need = config.min_viewers
    backing = (
        f"{voters} distinct viewers back it, at least {need} are needed"
        if voters >= need
        else f"only {voters} distinct viewer(s) back it, {need} are needed: withheld"
    )
    share = agreeing / opinions
    verdict = "≥" if share >= config.min_agreement else "<"
    agreement = (
        f"{agreeing} of the {opinions} viewers with an opinion on its content agree "
        f"({share:.0%} {verdict} {config.min_agreement:.0%})"
    )
    if share < config.min_agreement:
        agreement += ": disputed, withheld"
    return backing, agreement
