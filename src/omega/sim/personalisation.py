"""Personalisation speed: how a TV's recommendations improve with its own viewing.

DESIGN.md promises "personalisation within 10 interactions". Two measurements, both
tie-fair (the expected NDCG@10 / HR@10 under uniformly random tie-breaking,
:func:`~omega.sim.evaluation.expected_gains`), for Omega, local-only and popularity:

- **By history length** (:func:`by_history`): each viewer's held-out figure, grouped by
  how many training interactions the viewer had (1–2, 3–5, 6–10, 11–20, 21–50, > 50).
  Rows from *full histories* are the run's own fleets, judged by the protocol. MovieLens
  viewers all have ≥ 20 ratings, so the short buckets come from *first k events*: the
  cold-start curve's truncated histories, averaged over the k in the bucket.
- **Cold-start curve** (:func:`cold_start`): a new TV's quality after its first
  k = 0 … 10 events, replayed from real viewers' starts. No future event reaches it:

  1. ``count`` probe viewers are drawn (seeded) among those with at least 11 training
     interactions; a second federated fleet replays **every other viewer** exactly as the
     Omega fleet does (same settings, its own constellation and helper, its last round),
     so the probes' events never reach the release.
  2. Each probe then gets a fresh brain that joins that constellation where the replay
     ended (:func:`~omega.sim.fleet.join`: it pulls the whole release, as a new TV does).
     Its training events are moved later by whole weeks so they start after it joined
     (time of day, weekday and the gaps between events kept).
  3. For k = 0 … 10: the clock goes to the (k+1)-th event, the brain scores every title,
     and the (k+1)-th title is ranked among those it has not watched; then that event is
     tracked. At step k the brain holds only the first k events. No round runs while the
     probes watch, so the release it pulled when it joined is the one it keeps.
  4. Local-only: the same fresh brain without a constellation. Popularity: train counts of
     the second fleet's viewers (the probes excluded), the probe's first k titles excluded.

  The probes use training events only (never the held-out test item), and the held-out
  viewers' fleet is a tenth or so smaller than the run's: read its Omega curve as what a
  new TV gets from a slightly smaller fleet.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from omega.brain.catalog import SharedCatalog
from omega.errors import ConfigError
from omega.sim.baselines import PopularityScorer
from omega.sim.constellation import SimConstellation
from omega.sim.datasets import Dataset
from omega.sim.evaluation import (
    Scorer,
    Split,
    ViewerScorer,
    expected_gains,
    holdout_ranks,
    split,
)
from omega.sim.fleet import FleetConfig, FleetRun, join, new_tv, play

__all__ = [
    "BUCKETS",
    "MAX_EVENTS",
    "MODELS",
    "TRUNCATED",
    "AfterReplay",
    "ColdStart",
    "ColdStartSetup",
    "Gains",
    "Starts",
    "by_history",
    "cold_start",
    "history_gains",
    "personalisation",
    "popularity_starts",
    "probe_viewers",
    "replay_starts",
    "without_viewers",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Training interactions per bucket, inclusive (None: no upper bound).
BUCKETS: tuple[tuple[int, int | None], ...] = (
    (1, 2),
    (3, 5),
    (6, 10),
    (11, 20),
    (21, 50),
    (51, None),
)
#: The cold-start curve runs k = 0 … MAX_EVENTS.
MAX_EVENTS = 10
#: What ``by_history`` calls the rows it takes from the cold-start curve's probes.
TRUNCATED = "first k events"
#: The rows each measurement reports, in order.
MODELS = ("omega", "local_only", "popularity")
_WEEK = 7 * 86_400


@dataclass(frozen=True, slots=True)
class Gains:
    """Tie-fair (hit@10, NDCG@10 gain) per viewer, or per probe × k."""

    hits: FloatArray
    ndcg: FloatArray


def history_gains(split_: Split, scorer: Scorer) -> Gains:
    """Each viewer's tie-fair held-out figures under the protocol (full ranking)."""
    higher, lost = holdout_ranks(split_, scorer)
    hits, ndcg = expected_gains(higher, lost - higher)
    return Gains(hits, ndcg)


def probe_viewers(split_: Split, count: int, seed: int) -> IntArray:
    """``count`` viewers (sorted) with at least ``MAX_EVENTS + 1`` training interactions,
    drawn with ``seed``; ``ConfigError`` if there are not enough, leaving one for the fleet."""
    lengths = np.diff(split_.train_indptr)
    eligible = np.flatnonzero(lengths > MAX_EVENTS)
    if count < 1 or count > len(eligible) or count >= split_.n_viewers:
        raise ConfigError(
            f"--cold-start must be between 1 and {min(len(eligible), split_.n_viewers - 1)} "
            f"here (viewers with more than {MAX_EVENTS} training interactions, one left "
            f"for the fleet); got {count}"
        )
    rng = np.random.default_rng([seed, 20])  # apart from the attack's draw on `seed`
    return np.sort(rng.choice(eligible, size=count, replace=False)).astype(np.int64)


def without_viewers(dataset: Dataset, viewers: IntArray) -> Dataset:
    """``dataset`` without the rows of ``viewers``; the others keep their order."""
    gone = np.zeros(dataset.n_users, dtype=bool)
    gone[viewers] = True
    keep = ~gone[dataset.users]
    renumber = np.cumsum(~gone) - 1
    user_ids = tuple(u for u, out in zip(dataset.user_ids, gone, strict=True) if not out)
    return replace(
        dataset,
        user_ids=user_ids,
        users=renumber[dataset.users[keep]].astype(np.int32),
        items_idx=dataset.items_idx[keep],
        ratings=dataset.ratings[keep],
        timestamps=dataset.timestamps[keep],
        user_index={u: i for i, u in enumerate(user_ids)},
    )


@dataclass(frozen=True, slots=True)
class Starts:
    """The probes' first ``MAX_EVENTS + 1`` training events (probes × events)."""

    viewers: IntArray
    items: IntArray
    stars: FloatArray
    timestamps: IntArray

    @classmethod
    def of(cls, split_: Split, viewers: IntArray) -> Starts:
        n = MAX_EVENTS + 1
        rows = [split_.train_history(int(v)) for v in viewers]
        return cls(
            viewers=viewers,
            items=np.array([r[0][:n] for r in rows], dtype=np.int64).reshape(-1, n),
            stars=np.array([r[1][:n] for r in rows], dtype=np.float64).reshape(-1, n),
            timestamps=np.array([r[2][:n] for r in rows], dtype=np.int64).reshape(-1, n),
        )

    def after(self, probe: int, joined_at: float) -> FloatArray:
        """The probe's event times moved by whole weeks to start at or after ``joined_at``."""
        first = float(self.timestamps[probe, 0])
        weeks = max(0, math.ceil((joined_at - first) / _WEEK))
        moved: FloatArray = self.timestamps[probe].astype(np.float64) + weeks * _WEEK
        return moved


def _counts(scores: FloatArray, target: int) -> tuple[int, int]:
    """(titles scoring above ``target``, others tied with it); a title the TV cannot
    recommend (−inf: already watched) ranks below everything."""
    value = scores[target]
    if not np.isfinite(value):
        return len(scores), 0
    return int(np.sum(scores > value)), int(np.sum(scores == value)) - 1


def _as_gains(higher: IntArray, tied: IntArray) -> Gains:
    hits, ndcg = expected_gains(higher.ravel(), tied.ravel())
    return Gains(hits.reshape(higher.shape), ndcg.reshape(higher.shape))


async def replay_starts(
    starts: Starts,
    setup: ColdStartSetup,
    item_ids: list[str],
    *,
    constellation: SimConstellation | None,
    joined_at: float,
) -> Gains:
    """Each probe on a fresh TV (joining ``constellation`` if given): its figures at k = 0
    … ``MAX_EVENTS`` events, probes × (k + 1)."""
    shape = starts.items.shape
    higher, tied = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
    for p, viewer in enumerate(starts.viewers.tolist()):
        name = f"cold-start-{viewer}"
        where = setup.root / ("omega" if constellation is not None else "local-only") / name
        tv = new_tv(
            viewer,
            where,
            setup.shared,
            config=setup.config,
            constellation=constellation,
            name=name,
            # The server's catalog order: what a TV adopting the codebook stores, and what
            # co-watch rows name titles by.
            order=list(setup.shared.catalog.ids) if constellation is not None else (),
        )
        try:
            if tv.client is not None:
                await join(tv, joined_at)
            when = starts.after(p, joined_at)
            for k in range(shape[1]):
                tv.clock.set(float(when[k]))
                scores = tv.brain.score_all().astype(np.float64)
                higher[p, k], tied[p, k] = _counts(scores, int(starts.items[p, k]))
                if k < MAX_EVENTS:
                    play(tv.brain, item_ids[int(starts.items[p, k])], float(starts.stars[p, k]))
        finally:
            tv.brain.close()
    return _as_gains(higher, tied)


def popularity_starts(fleet_split: Split, starts: Starts) -> Gains:
    """Popularity counted over ``fleet_split``'s training events, each probe's first k titles
    excluded at step k."""
    popularity = PopularityScorer(fleet_split).popularity
    higher, tied = np.zeros_like(starts.items), np.zeros_like(starts.items)
    for p in range(starts.items.shape[0]):
        scores = popularity.copy()
        for k, item in enumerate(starts.items[p].tolist()):
            higher[p, k], tied[p, k] = _counts(scores, item)
            scores[item] = -np.inf
    return _as_gains(higher, tied)


@dataclass(frozen=True, slots=True)
class ColdStart:
    """The cold-start curve's measurements: each model's gains, probes × (k + 1)."""

    starts: Starts
    gains: Mapping[str, Gains]
    fleet_viewers: int

    def curve(self) -> list[dict[str, float]]:
        """One point per k: each model's mean NDCG@10 and HR@10 with their standard errors."""
        points = []
        for k in range(self.starts.items.shape[1]):
            point: dict[str, float] = {"k": k, "viewers": len(self.starts.viewers)}
            for model, gains in self.gains.items():
                point.update(_mean(model, gains.ndcg[:, k], gains.hits[:, k]))
            points.append(point)
        return points


#: Called with a replayed fleet and its constellation before the constellation closes.
AfterReplay = Callable[[FleetRun, SimConstellation], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ColdStartSetup:
    """What the cold-start curve needs from a run: ``replay(dataset, after)`` replays a
    federated fleet of ``dataset`` with the run's settings and calls ``after``."""

    shared: SharedCatalog
    #: The viewers held out (:func:`probe_viewers`).
    probes: IntArray
    config: FleetConfig
    root: Path
    replay: Callable[[Dataset, AfterReplay], Awaitable[None]]


async def cold_start(split_: Split, setup: ColdStartSetup) -> ColdStart:
    """The cold-start curve of ``setup.probes`` (see the module docstring)."""
    starts = Starts.of(split_, setup.probes)
    rest = without_viewers(split_.dataset, setup.probes)
    item_ids = [i.item_id for i in split_.dataset.items]
    gains: dict[str, Gains] = {}
    joined: list[float] = []

    async def probe(run: FleetRun, constellation: SimConstellation) -> None:
        joined.append(run.ended_at())
        gains["omega"] = await replay_starts(
            starts, setup, item_ids, constellation=constellation, joined_at=joined[0]
        )

    await setup.replay(rest, probe)
    assert joined, "the replay calls back with its fleet before it closes"
    gains["local_only"] = await replay_starts(
        starts, setup, item_ids, constellation=None, joined_at=joined[0]
    )
    gains["popularity"] = popularity_starts(split(rest), starts)
    return ColdStart(starts, gains, fleet_viewers=rest.n_users)


async def personalisation(
    split_: Split,
    omega: Callable[[int], npt.NDArray[np.float32]],
    local_only: Callable[[int], npt.NDArray[np.float32]],
    setup: ColdStartSetup | None,
) -> dict[str, Any]:
    """The report's section: NDCG@10 by history length (``omega`` and ``local_only`` score
    one viewer at its hold-out) and, with a ``setup``, the cold-start curve."""
    gains = {
        "omega": history_gains(split_, ViewerScorer(omega)),
        "local_only": history_gains(split_, ViewerScorer(local_only)),
        "popularity": history_gains(split_, PopularityScorer(split_)),
    }
    cold = await cold_start(split_, setup) if setup is not None else None
    section: dict[str, Any] = {"by_history": by_history(split_, gains, cold)}
    if cold is not None:
        section["cold_start"] = {"fleet_viewers": cold.fleet_viewers, "curve": cold.curve()}
    return section


def _mean(model: str, ndcg: FloatArray, hits: FloatArray) -> dict[str, float]:
    n = len(ndcg)
    se = float(np.std(ndcg, ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return {
        f"{model}_ndcg@10": float(np.mean(ndcg)) if n else math.nan,
        f"{model}_ndcg@10_se": se,
        f"{model}_hr@10": float(np.mean(hits)) if n else math.nan,
    }


def _label(low: int, high: int | None) -> str:
    return f"> {low - 1}" if high is None else f"{low}–{high}"


def by_history(
    split_: Split, gains: Mapping[str, Gains], cold: ColdStart | None = None
) -> list[dict[str, Any]]:
    """NDCG@10 per bucket of training interactions: a row from full histories where viewers
    fall in the bucket, and one from first-k-event histories where the curve covers it."""
    lengths = np.diff(split_.train_indptr)
    rows: list[dict[str, Any]] = []
    for low, high in BUCKETS:
        bucket = {"bucket": _label(low, high), "low": low, "high": high}
        inside = (lengths >= low) & (lengths <= (high if high is not None else lengths.max()))
        if inside.any():
            row: dict[str, Any] = {**bucket, "histories": "full", "viewers": int(inside.sum())}
            for model, g in gains.items():
                row.update(_mean(model, g.ndcg[inside], g.hits[inside]))
            rows.append(row)
        if cold is not None and high is not None and high <= MAX_EVENTS:
            ks = slice(low, high + 1)
            row = {**bucket, "histories": TRUNCATED, "viewers": len(cold.starts.viewers)}
            for model, g in cold.gains.items():
                # One figure per probe (its mean over the k in the bucket): probes are the
                # independent draws the standard error is over.
                row.update(_mean(model, g.ndcg[:, ks].mean(axis=1), g.hits[:, ks].mean(axis=1)))
            rows.append(row)
    return rows
