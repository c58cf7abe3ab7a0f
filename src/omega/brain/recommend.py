"""Scoring and choosing what to recommend.

Signals per candidate (each min-max scaled over the candidates, then weighted by the
chosen skill):

- ``recent``: a sharp similarity kernel over the last titles watched;
- ``era``: how close the title's release year is to those of the last titles watched
  (households watch in runs of one period: years apart cost ``1 / ERA_YEARS`` each);
- ``instant`` / ``episodic`` / ``semantic``: cosine to each memory tier's taste
  (the evolutionary tier steadies the semantic one);
- ``next``: how often content in the candidate's cell follows the cells just watched,
  from the crowd's released transition patterns and the device's own;
- ``crowd``: what viewers like in this context, plus trends;
- ``cowatch``: what viewers went on to watch after the household's last titles, from the
  released co-watch table (``omega.brain.cowatch``), in [0, 1];
- ``popular``: how often titles are started across the fleet, released by the
  constellation as the collective tier's popularity list: counted from two-server
  reports that neither server can read alone, with noise on the released totals (from
  ε-LDP reports where there is no helper server; see ``docs/popularity.md``);
- a penalty for cells this household (or the crowd) abandons.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from omega.brain._sorted import sorted_unique
from omega.brain.catalog import Catalog
from omega.brain.cowatch import Edges
from omega.brain.knowledge import CellKnowledge
from omega.brain.skills import Skill
from omega.errors import InputError

if TYPE_CHECKING:  # usearch is loaded only by brains that search
    from omega.brain._kept_signals import KeptSignals
    from omega.brain.index import VectorIndex

__all__ = [
    "ALL_SIGNALS",
    "SIGNALS",
    "TASTES",
    "Filters",
    "Recommendation",
    "ScoringState",
    "choose",
    "combine",
    "score_rows",
    "signal_rows",
]

SIGNALS = (
    "recent",
    "era",
    "instant",
    "episodic",
    "semantic",
    "next",
    "crowd",
    "cowatch",
    "popular",
)
ALL_SIGNALS = frozenset(SIGNALS)
#: Signals on a fixed scale, not min-max scaled per request: ``recent`` is a mean kernel
#: in [0, 1], ``popular`` a released score in [0, 1], ``era`` minus years / ERA_YEARS.
#: Min-max scaling let one close title or one released score swamp the rest.
FIXED_SCALE = frozenset({"recent", "era", "popular", "cowatch"})
#: Signals from the fleet's releases (patterns, co-watch table), not from this
#: household's viewing.
CROWD_SIGNALS = frozenset({"next", "crowd", "cowatch"})
#: The memory tiers whose tastes are signals of their own (the ``semantic`` signal falls
#: back on the evolutionary tier's taste).
TASTES = ("instant", "episodic", "semantic")
#: Years between releases that cost one unit of the ``era`` signal.
ERA_YEARS = 5.0
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
#: What the index returns where it found fewer neighbours than asked.
_NO_KEY = np.iinfo(np.uint64).max


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    genres: tuple[str, ...] = ()
    #: The longest runtime in minutes (None: any); a title of unknown runtime is left out.
    max_runtime_min: int | None = None
    exclude: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.max_runtime_min is not None and self.max_runtime_min < 1:
            raise InputError(
                f"max_runtime_min must be at least 1 minute, got {self.max_runtime_min}",
                param="max_runtime_min",
            )


@dataclass(frozen=True, slots=True)
class Recommendation:
    item_id: str
    title: str
    score: float
    reason: str
    signals: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class ScoringState:
    """Everything scoring reads, gathered by the brain for one request."""

    #: The tiers' tastes the signals read, as unit vectors (None: the tier holds none).
    tiers: dict[str, F32 | None]
    recent_rows: list[tuple[int, float]]  # (catalog row, weight), most recent first
    time_bucket: str
    day_type: str
    knowledge: CellKnowledge
    next_cells: F32 = field(default_factory=lambda: np.zeros(0, np.float32))
    crowd_cells: F32 = field(default_factory=lambda: np.zeros(0, np.float32))
    #: Released title popularity per catalog row (empty: none known).
    popular: F32 = field(default_factory=lambda: np.zeros(0, np.float32))
    #: The co-watch score per catalog row (empty: no table held), and the table's entries
    #: it was scored from (to name the household's title in reasons).
    cowatch: F32 = field(default_factory=lambda: np.zeros(0, np.float32))
    cowatch_edges: Edges | None = None
    #: The share of the ranked titles (by the household's own signals) co-watch may lift
    #: (0: all; ``BrainConfig.cowatch_pool``); with a gate, co-watch adds no candidates.
    cowatch_gate: float = 0.0
    #: The signals scored (a self-test's state names only those its skills weigh).
    signals: frozenset[str] = ALL_SIGNALS

    def __post_init__(self) -> None:
        # Cell-level scores depend only on the request, not the candidate: compute once.
        if len(self.next_cells) == 0:
            self.next_cells = np.zeros(self.knowledge.k, np.float32)
        if len(self.crowd_cells) == 0:
            self.crowd_cells = self.knowledge.crowd_scores(self.time_bucket, self.day_type)


def cell_state(catalog: Catalog, state: ScoringState) -> None:
    """Fill in what follows the recently watched cells."""
    recent = state.recent_rows
    cells = catalog.cells[[r for r, _ in recent]].tolist()
    recent_cells = list(zip(cells, (w for _, w in recent), strict=True))
    state.next_cells = state.knowledge.next_blend(recent_cells, 0.5)


def _scaled(values: F32) -> F32:
    # The ufuncs' reductions themselves: ndarray.min/max add a Python layer over them.
    lo = float(np.minimum.reduce(values, initial=0.0))
    hi = float(np.maximum.reduce(values, initial=0.0))
    if hi - lo <= 1e-9:
        return np.zeros_like(values)
    out: F32 = values - lo  # float32 throughout: the scalars take the array's type
    out /= hi - lo
    return out


def recent_kernel(
    catalog: Catalog,
    rows: I64,
    recent: Sequence[tuple[int, float]],
    *,
    vectors: F32 | None = None,
) -> F32:
    """How close each row is to the titles just watched: Σ w·max(0, cos)^4.

    A sharp kernel over the last few titles (not one averaged taste vector) keeps several
    interests apart — what a household watches next is usually near one of them.
    ``vectors``: ``catalog.matrix[rows]`` when the caller already gathered it.
    """
    if not recent:
        return np.zeros(len(rows), np.float32)
    rows_of, weights_of = zip(*recent, strict=True)
    recent_rows = np.array(rows_of, dtype=np.int64)
    weights = np.array(weights_of, dtype=np.float32)
    if vectors is None:
        vectors = catalog.matrix[rows]
    sims = vectors @ catalog.matrix[recent_rows].T
    np.maximum(sims, np.float32(0.0), out=sims)
    sims *= sims
    sims *= sims
    # Every term is finite and ≥ 0 (unit vectors, positive weights), so an "invalid"
    # flag here can only come from inside OpenBLAS's sgemv, which now and then leaves
    # FE_INVALID raised (numpy clears the flags before the call; numpy#13173, #24067,
    # OpenBLAS#1924). It failed one CI run in ~30 as a RuntimeWarning; the product is fine.
    with np.errstate(invalid="ignore"):
        out: F32 = (sims @ weights).astype(np.float32, copy=False)
    return out


def era_gap(catalog: Catalog, rows: I64, recent: Sequence[tuple[int, float]]) -> F32:
    """Minus the years between each row's release and the nearest recent title's, in
    units of ``ERA_YEARS`` (0 where a year is unknown)."""
    recent_years = catalog.years[[r for r, _ in recent]].tolist()
    known = sorted({y for y in recent_years if math.isfinite(y)})
    if not known:
        return np.zeros(len(rows), np.float32)
    # The nearest recent year is one of the two around each row's year in sorted order
    # (a float32 difference is monotonic in either term: the same minimum as over all).
    # Infinities at the ends stand in for "none on that side"; the NaN last is where
    # searchsorted puts a row of unknown year, whose gap is then NaN (and 0 below).
    years = np.array([-math.inf, *known, math.inf, math.nan], np.float32)
    wanted = catalog.years[rows]
    at = np.searchsorted(years, wanted)
    gaps = np.abs(wanted - years[at - 1])
    np.minimum(gaps, np.abs(years[at] - wanted), out=gaps)
    gaps /= np.float32(-ERA_YEARS)
    out: F32 = np.where(np.isfinite(gaps), gaps, np.float32(0.0))
    return out


def score_rows(
    catalog: Catalog,
    rows: I64,
    state: ScoringState,
    skill: Skill,
    *,
    gate: float = 0.0,
    ranked: npt.NDArray[np.bool_] | None = None,
    cowatch_gate: float = 0.0,
    kept: KeptSignals | None = None,
) -> tuple[F32, dict[str, F32]]:
    """Scores for the given catalog rows and the scaled signals behind them (``gate``,
    ``ranked`` and ``cowatch_gate``: see :func:`combine`; ``kept``: the brain's last
    signals, reused when nothing they were scored from changed)."""
    if kept is not None:
        signals, penalty = kept.signal_rows(catalog, rows, state)
    else:
        signals, penalty = signal_rows(catalog, rows, state)
    scores = combine(signals, penalty, skill, gate=gate, ranked=ranked, cowatch_gate=cowatch_gate)
    return scores, signals


def signal_rows(catalog: Catalog, rows: I64, state: ScoringState) -> tuple[dict[str, F32], F32]:
    """Each signal ``state.signals`` names for the given rows (fixed-scale or min-max
    scaled) and the scaled penalty of cells the household avoids."""
    wanted = state.signals
    vectors = catalog.matrix[rows]  # gathered once: the costliest step at a few hundred rows
    raw: dict[str, F32] = {}
    if "recent" in wanted:
        weight_sum = sum(w for _, w in state.recent_rows) or 1.0
        recent = recent_kernel(catalog, rows, state.recent_rows, vectors=vectors)
        recent /= np.float32(weight_sum)
        raw["recent"] = recent
    if "era" in wanted:
        raw["era"] = era_gap(catalog, rows, state.recent_rows)
    for name in TASTES:
        if name not in wanted:
            continue
        direction = state.tiers.get(name)
        if direction is None and name == "semantic":
            direction = state.tiers.get("evolutionary")
        raw[name] = (
            vectors @ direction if direction is not None else np.zeros(len(rows), np.float32)
        )
    cells = catalog.cells[rows]
    avoid = state.knowledge.avoid_scores()
    k = state.knowledge.k
    if len(cells) and np.minimum.reduce(cells) >= 0 and np.maximum.reduce(cells) < k:
        # Every row in a cell (the usual case): no mask to apply.
        next_, crowd, penalty = state.next_cells[cells], state.crowd_cells[cells], avoid[cells]
    else:
        valid = (cells >= 0) & (cells < k)
        safe = np.where(valid, cells, 0)
        next_ = np.where(valid, state.next_cells[safe], np.float32(0.0))
        crowd = np.where(valid, state.crowd_cells[safe], np.float32(0.0))
        penalty = np.where(valid, avoid[safe], np.float32(0.0))
    if "next" in wanted:
        raw["next"] = next_.astype(np.float32, copy=False)
    if "crowd" in wanted:
        raw["crowd"] = crowd.astype(np.float32, copy=False)
    penalty = penalty.astype(np.float32, copy=False)
    if "popular" in wanted:
        known = len(state.popular) == len(catalog)
        raw["popular"] = state.popular[rows] if known else np.zeros(len(rows), np.float32)
    if "cowatch" in wanted:
        together = len(state.cowatch) == len(catalog)
        raw["cowatch"] = state.cowatch[rows] if together else np.zeros(len(rows), np.float32)

    signals = {
        name: values if name in FIXED_SCALE else _scaled(values) for name, values in raw.items()
    }
    return signals, _scaled(penalty)


def combine(
    signals: dict[str, F32],
    penalty: F32,
    skill: Skill,
    *,
    gate: float = 0.0,
    ranked: npt.NDArray[np.bool_] | None = None,
    cowatch_gate: float = 0.0,
) -> F32:
    """A skill's score: its weighted sum of the signals, less half the avoid penalty.

    With ``cowatch_gate`` in (0, 1], the co-watch signal lifts only the rows in that top
    share of the household's own score, as ``gate`` does for popularity: forged pairs
    then reach only households whose own viewing already brought the title up.

    With ``gate`` in (0, 1], the crowd's popularity only adds to the rows in that top
    share of the household's own score (the sum of its own signals: not the released
    patterns' ``next`` and ``crowd``, nor popularity) among the ``ranked`` rows
    (default: all; titles already watched are left out): popularity re-orders what
    this household's viewing already brought up and never puts a title in front of it on
    its own. A coalition of TVs that makes one title "popular" (a third of the fleet
    reporting it) then reaches only the households already close to it (see
    ``docs/popularity.md``)."""
    own = np.zeros(len(penalty), dtype=np.float32)  # what this household's viewing says
    crowd = np.zeros(len(penalty), dtype=np.float32)  # what the released patterns say
    boost = lift = None
    for name, values in signals.items():
        # A signal weighed 0 adds ±0 (every signal is finite), which changes no sum here:
        # the sums start at +0 and never become −0, so it is left out (a self-test does
        # not even compute it).
        weight = np.float32(skill.weights.get(name, 0.0))
        if not weight:
            continue
        if name == "popular":
            boost = weight * values
        elif name == "cowatch" and cowatch_gate > 0:
            lift = weight * values
        elif name in CROWD_SIGNALS:
            crowd += weight * values
        else:
            own += weight * values
    own -= np.float32(0.5) * penalty
    total = own + crowd
    # Ranked by the household's own signals alone: patterns or pairs a coalition got
    # released must not decide which titles popularity (or co-watch) may lift.
    pool = own if ranked is None else own[ranked]
    if boost is not None:
        total += _gated(boost, own, pool, gate)
    if lift is not None:
        total += _gated(lift, own, pool, cowatch_gate)
    return total


def _gated(values: F32, own: F32, pool: F32, gate: float) -> F32:
    """``values`` where ``own`` is within the top ``gate`` share of ``pool``, else 0."""
    keep = max(1, math.ceil(gate * len(pool))) if gate > 0 else len(pool)
    if 0 < keep < len(pool):
        threshold = np.partition(pool, len(pool) - keep)[len(pool) - keep]
        return np.where(own >= threshold, values, np.float32(0.0))
    return values


def candidate_rows(
    catalog: Catalog,
    state: ScoringState,
    search: VectorIndex,
    *,
    per_source: int,
) -> I64:
    """Rows worth scoring: index neighbours of the recent titles and of each tier's taste,
    and the titles of the cells most likely next."""
    found: list[I64] = []
    # The last three titles and two time scales of taste: each index query costs ~0.2 ms.
    queries = [catalog.matrix[r] for r, _ in state.recent_rows[:3]]
    queries += [d for n in ("instant", "semantic") if (d := state.tiers.get(n)) is not None]
    if queries and len(search):
        # One batched index call: usearch answers all queries together.
        keys = search.search_batch(np.stack(queries), per_source // 2)
        found.append(catalog.rows_for_keys(keys[keys != _NO_KEY]))
    if len(state.cowatch) == len(catalog) and state.cowatch_gate == 0:
        # The best co-watch titles: among the few the table gives a score at all (the
        # request's edges name them: no pass over the whole catalog).
        edges = state.cowatch_edges
        if edges is None:
            scored = np.flatnonzero(state.cowatch)
            scored = scored[state.cowatch[scored] > 0]
            if len(scored) > per_source:
                scored = scored[np.argpartition(-state.cowatch[scored], per_source)[:per_source]]
        else:  # worked out once per read: a screen redrawn asks again
            scored = edges.strongest(state.cowatch, per_source)
        found.append(scored)
    cell_scores = state.next_cells + np.float32(0.1) * state.crowd_cells
    if cell_scores.max(initial=0.0) > 0:
        budget = per_source
        for cell in np.argsort(-cell_scores)[:12].tolist():
            if cell_scores[cell] <= 0 or budget <= 0:
                break
            members = catalog.cell_rows.get(int(cell))
            if members is not None:
                found.append(members[:budget])
                budget -= len(members)
    # The crowd's popular titles are candidates of their own only for a household with no
    # viewing yet; otherwise they count where the household's taste already reaches.
    if (
        not state.recent_rows
        and len(state.popular) == len(catalog)
        and state.popular.max(initial=0.0) > 0
    ):
        top = np.argsort(-state.popular)[:per_source]
        found.append(top[state.popular[top] > 0])
    if not found:
        # Cold start with nothing known: a spread over the cells.
        found.append(np.array([m[0] for m in catalog.cell_rows.values()], dtype=np.int64))
    return sorted_unique(np.concatenate(found))


def allowed(catalog: Catalog, rows: I64, filters: Filters, seen: npt.NDArray[np.bool_]) -> I64:
    """The rows passing the filters and not already watched or skipped (``seen``)."""
    mask = ~seen[rows]
    if filters.exclude:
        mask &= np.array([catalog.ids[r] not in filters.exclude for r in rows.tolist()], dtype=bool)
    if filters.max_runtime_min is not None:
        rt = catalog.runtime[rows]
        mask &= (rt >= 0) & (rt <= filters.max_runtime_min)
    if filters.genres:
        wanted = {g.lower() for g in filters.genres}
        mask &= np.array(
            [bool(wanted & {g.lower() for g in catalog.genres[r]}) for r in rows.tolist()],
            dtype=bool,
        )
    return rows[mask]


def choose(scores: F32, rows: I64, catalog: Catalog, k: int, diversity: float) -> list[int]:
    """Top k by score, discounting titles whose cell is already on the list.

    Lazy greedy: penalties only grow, so a popped entry whose penalty is current is the
    best remaining one.
    """
    if len(rows) == 0:
        return []
    pool = min(len(rows), k * 5)
    order = np.argpartition(-scores, pool - 1)[:pool] if pool < len(rows) else np.arange(len(rows))
    cells = catalog.cells[rows[order]].tolist()
    # (-score, the cell's count when scored, position, cell), built by zip, not per title.
    negated = (-scores[order]).tolist()
    heap = list(zip(negated, itertools.repeat(0), order.tolist(), cells, strict=False))
    heapq.heapify(heap)
    used: dict[int, int] = {}
    picked: list[int] = []
    while heap and len(picked) < k:
        neg, seen_count, i, cell = heapq.heappop(heap)
        now_count = used.get(cell, 0)
        if now_count != seen_count:
            penalty = diversity * (now_count - seen_count)
            heapq.heappush(heap, (neg + penalty, now_count, i, cell))
            continue
        picked.append(i)
        used[cell] = now_count + 1
    return picked
