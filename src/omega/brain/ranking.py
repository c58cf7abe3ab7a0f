"""How a brain recommends: full rankings and self-tests over a snapshot of its state.

The brain gathers a :class:`Snapshot` under its lock — the catalog, the index, the
scoring state (tiers' tastes, recent titles, cell knowledge, popularity) and the titles
already seen — and these functions rank from it without changing the brain. The
snapshot shares the live index, cell knowledge and seen mask, so it is read under the
brain's lock. The scoring itself (signals, skills' weights, diversity) is
:mod:`omega.brain.recommend`; the reasons are :mod:`omega.brain.reasons`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from omega.brain._kept_signals import KeptSignals
from omega.brain._sorted import sorted_unique
from omega.brain.catalog import Catalog
from omega.brain.config import BrainConfig
from omega.brain.cowatch import CowatchMatrix
from omega.brain.episodes import Context, EpisodeRow, context_at
from omega.brain.index import VectorIndex
from omega.brain.knowledge import CellKnowledge
from omega.brain.learner import RecentTitle
from omega.brain.reasons import reasons
from omega.brain.recommend import (
    ALL_SIGNALS,
    TASTES,
    Filters,
    Recommendation,
    ScoringState,
    allowed,
    candidate_rows,
    cell_state,
    choose,
    combine,
    score_rows,
    signal_rows,
)
from omega.brain.skills import SELF_TESTED, SKILLS, Skill
from omega.brain.tiers import MemoryTiers

__all__ = [
    "FULL_SCORE_LIMIT",
    "OFFER_TTL",
    "SELF_TEST_SIGNALS",
    "Offer",
    "Snapshot",
    "credit",
    "is_self_test",
    "popularity_gate",
    "rank",
    "recommend",
    "scoring_state",
    "self_test",
]

FULL_SCORE_LIMIT = 3000  # below this catalog size, score every title
OFFER_TTL = 6 * 3600.0  # a recommendation list earns credit for this long
#: The signals the self-tested skills weigh: a self-test scores no other.
SELF_TEST_SIGNALS = frozenset(
    name for skill in SELF_TESTED for name, weight in SKILLS[skill].weights.items() if weight
)
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Offer:
    """A recommendation list shown: when, by which skill, in which context, which titles.
    A title on it started within ``OFFER_TTL`` credits the skill."""

    shown_at: float
    skill: str
    context: str
    keys: frozenset[int]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one ranking reads, gathered under the brain's lock."""

    catalog: Catalog
    index: VectorIndex
    state: ScoringState
    seen: npt.NDArray[np.bool_]  # rows already watched or skipped
    gate: float  # the popularity gate for a whole-catalog scoring (see ``popularity_gate``)
    #: The brain's last candidate signals, for a screen redrawn with nothing changed.
    kept: KeptSignals | None = None


def recent_rows(catalog: Catalog, recent: Sequence[RecentTitle]) -> list[tuple[int, float]]:
    """The last ten distinct titles started, most recent first, as (row, weight): recency
    by position, and a title enjoyed counts more than one abandoned."""
    rows: list[tuple[int, float]] = []
    taken: set[int] = set()
    for title in reversed(recent):
        row = catalog.row_of_key.get(title.key)
        if row is not None and row not in taken:
            rows.append((row, (0.5 + 0.5 * title.reward) * 0.8 ** len(rows)))
            taken.add(row)
        if len(rows) == 10:
            break
    return rows


def scoring_state(
    catalog: Catalog,
    *,
    tiers: MemoryTiers,
    recent: Sequence[RecentTitle],
    knowledge: CellKnowledge,
    popular: F32,
    now: float,
    context: Context | None,
    cowatch: CowatchMatrix | None = None,
    cowatch_pool: int = 0,
    signals: frozenset[str] = ALL_SIGNALS,
) -> ScoringState:
    """What scoring ``signals`` reads: of the tiers' tastes, only those they need."""
    ctx = context or context_at(now)
    tastes = {name: tiers[name].direction(now) for name in TASTES if name in signals}
    if "semantic" in tastes and tastes["semantic"] is None:  # the signal falls back on it
        tastes["evolutionary"] = tiers["evolutionary"].direction(now)
    state = ScoringState(
        tiers=tastes,
        recent_rows=recent_rows(catalog, recent),
        time_bucket=ctx.time_bucket,
        day_type=ctx.day_type,
        knowledge=knowledge,
        popular=popular,
        signals=signals,
    )
    cell_state(catalog, state)
    if cowatch is not None:
        started = [
            (row, title.reward)
            for title in reversed(recent)
            if (row := catalog.row_of_key.get(title.key)) is not None
        ]
        state.cowatch_edges, state.cowatch = cowatch.read(cowatch.history(started), len(catalog))
        if cowatch_pool and len(catalog):
            state.cowatch_gate = min(1.0, cowatch_pool / len(catalog))
    return state


def popularity_gate(config: BrainConfig, state: ScoringState, catalog: Catalog) -> float:
    """The popularity gate as a share of the titles ranked (``BrainConfig.popular_pool``
    of the catalog); none before any viewing."""
    pool = config.popular_pool
    if not pool or not state.recent_rows or not len(catalog):
        return 0.0
    return min(1.0, pool / len(catalog))


def recommend(
    snap: Snapshot, skill: Skill, *, k: int, filters: Filters, config: BrainConfig, now: float
) -> tuple[list[Recommendation], Offer | None]:
    """Up to k titles not yet watched or skipped, best first, each with a reason; and the
    offer they make (None when there is nothing to recommend)."""
    catalog, state = snap.catalog, snap.state
    whole = len(catalog) <= FULL_SCORE_LIMIT
    if whole:
        rows = np.arange(len(catalog), dtype=np.int64)
    else:
        rows = candidate_rows(catalog, state, snap.index, per_source=config.candidates)
    rows = allowed(catalog, rows, filters, snap.seen)
    if len(rows) < k and not whole:
        rows = allowed(catalog, np.arange(len(catalog), dtype=np.int64), filters, snap.seen)
        whole = True
    if len(rows) == 0:
        return [], None
    # Candidates already come from the household's taste; a whole-catalog scoring (the
    # rows left after the filters) is gated.
    scores, signals = score_rows(
        catalog,
        rows,
        state,
        skill,
        gate=snap.gate if whole else 0.0,
        cowatch_gate=state.cowatch_gate if whole else 0.0,
        kept=snap.kept,
    )
    picked = np.array(choose(scores, rows, catalog, k, config.diversity), dtype=np.int64)
    picked_rows = rows[picked].tolist()
    # The picked titles' values, read once per signal rather than once per title.
    values = {n: v[picked].tolist() for n, v in signals.items()}
    worded = reasons(
        catalog,
        picked_rows,
        values,
        skill,
        recent=state.recent_rows,
        cowatch=state.cowatch_edges,
        time_bucket=state.time_bucket,
    )
    names, ids, titles = list(values), catalog.ids, catalog.titles
    out = [
        Recommendation(
            item_id=ids[row],
            title=titles[row],
            score=score,
            reason=reason,
            signals=dict(zip(names, per_signal, strict=True)),
        )
        for row, score, reason, per_signal in zip(
            picked_rows,
            scores[picked].tolist(),
            worded,
            zip(*values.values(), strict=True),
            strict=True,
        )
    ]
    context = f"{state.time_bucket}/{state.day_type}"
    keys = frozenset(catalog.keys[rows[picked]].tolist())
    return out, Offer(now, skill.name, context, keys)


def rank(snap: Snapshot, skill: Skill) -> F32:
    """A score for every catalog row (−inf for titles already interacted with): the full
    ranking the evaluation protocol asks for."""
    rows = np.arange(len(snap.catalog), dtype=np.int64)
    scores, _ = score_rows(
        snap.catalog,
        rows,
        snap.state,
        skill,
        gate=snap.gate,
        ranked=~snap.seen,
        cowatch_gate=snap.state.cowatch_gate,
    )
    scores[snap.seen] = -np.inf
    return scores


def is_self_test(episode: EpisodeRow, interacted: Collection[int], *, sample: int) -> bool:
    """Whether an episode is a self-test: a title started and enjoyed for the first time
    (a recommender would not offer a rewatch)."""
    return (
        sample > 0
        and episode.kind in ("view", "rating")
        and episode.success
        and episode.item_key is not None
        and episode.item_key not in interacted
    )


def self_test(snap: Snapshot, episode: EpisodeRow, *, sample: int) -> dict[str, float] | None:
    """Rank the title of a self-test episode (:func:`is_self_test`) under each self-tested
    skill among a sample of unseen titles, as a moment earlier (see
    ``omega.brain.skills``): each skill's reciprocal rank, or None when it cannot be
    ranked."""
    catalog = snap.catalog
    target = None if episode.item_key is None else catalog.row_of_key.get(episode.item_key)
    if target is None:
        return None  # the title is not in the catalog
    if len(catalog) <= sample:  # rank among every unseen title
        drawn = np.flatnonzero(~snap.seen)
        drawn = drawn[drawn != target]
    else:
        rng = np.random.default_rng(episode.id)  # deterministic per brain
        drawn = rng.integers(0, len(catalog), size=sample + sample // 2)
        drawn = sorted_unique(drawn[~snap.seen[drawn] & (drawn != target)])[:sample]
    if len(drawn) == 0:
        return None
    rows = np.concatenate(([target], drawn)).astype(np.int64)
    signals, penalty = signal_rows(catalog, rows, snap.state)
    gains = {}
    for name in SELF_TESTED:
        gated = snap.state.cowatch_gate
        scores = combine(signals, penalty, SKILLS[name], gate=snap.gate, cowatch_gate=gated)
        rank_of = int(np.count_nonzero(scores[1:] >= scores[0]))  # ties count against it
        gains[name] = 1.0 / (1.0 + rank_of)
    return gains


def credit(offer: Offer | None, episode: EpisodeRow) -> tuple[bool | None, Offer | None]:
    """Whether ``episode`` settles the offer — (hit, None) when it does, (None, offer)
    while it stays open, (None, None) once it expired."""
    if offer is None or episode.kind not in ("view", "rating", "search"):
        return None, offer
    if episode.ts - offer.shown_at > OFFER_TTL:
        return None, None
    if episode.item_key is None:
        return None, offer
    return episode.item_key in offer.keys and episode.success, None
