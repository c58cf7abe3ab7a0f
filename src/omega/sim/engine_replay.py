"""The dataset replay on an engine: brains in batches, one task per batch and step, with
the local replay's figures.

``omega simulate --engine dask --dataset …`` replays the same viewers' histories through
the same brains and the same constellation as the local engine (``omega.sim.fleet``); only
where the brains run differs. The local replay walks every training event in global time
order: a viewer's event, then its sync if one is due, then a federation round if one is
due, then a checkpoint if one falls there. This module keeps that order where it decides
anything and lets go of it where it cannot matter:

- *What a brain pulls changes only at a round.* Between two rounds the constellation's
  release (patterns, trends, the popularity list) stands still, and a round's input does
  not depend on the order in which viewers' pushes arrived since the last one: it reads
  each viewer's latest contribution per pattern, and the two-server reports are counted
  as sums, in helper batches whose number depends only on how many are queued. So the
  replay is cut into *steps* at the events where a round is decided or a checkpoint falls,
  and within a step viewers are independent of each other.
- *Where the cuts fall depends only on the timestamps.* The local replay decides a round
  at the first event a round interval after its last decision, whether or not the round
  then runs (it runs when enough pushes arrived), and a viewer syncs every
  ``sync_every`` of its own events or once ``sync_gap_s`` passed since its last sync. The
  driver computes both up front (:func:`schedule`).
- *Each step's viewers run as tasks of ``batch`` viewers* (fewer when the step has fewer
  viewers than the engine has workers times ``batch``): a task opens its brains (one
  directory per viewer under the run's work directory, which every engine worker must
  see), replays their events of the step in order, syncs each where the local replay
  would (same clock), and closes them. Not one task per TV: a task costs the engine
  milliseconds.
- *A brain closed and reopened must be the brain that stayed open.* Its database holds
  nearly everything, but not all: the sync client's seeded report RNG lives in memory,
  and the learner rebuilds the titles interacted with and the recent titles from its
  stored episodes, which the weekly loop prunes past the retention (180 days) — a
  reopened brain forgets titles that one left open remembers, and ranks differently.
  So these three are kept beside each brain between tasks (``omega.sim.engine_tasks.Carried``).
- *The constellation's side stays in the driver, in the local order.* After a step the
  driver adds up the pushes its tasks made and runs the round exactly when the local
  replay would; at a checkpoint it opens the finished viewers' brains itself and scores
  them as the local replay does. The end (everyone pushes what is left, a last round,
  everyone catches up, a newcomer joins) runs the same way.

Every brain therefore sees the same events at the same simulated times, pulls the same
releases at the same points of its own history and leaves the same state on disk, and
the constellation runs the same rounds on the same input: the figures are identical to
the local engine's for the same seed (``tests/sim/test_engine_replay.py``; a full
ml-latest-small run in docs/scale.md). The constellation is the in-process one the local
replay uses (same app, same settings), served by uvicorn on a loopback port so the
workers' TVs reach it over real HTTP.

The price of exactness is a barrier per step: a replay of years of viewing has a step
per simulated week or so, most with a handful of viewers, so the workers mostly wait for
each other and the driver (docs/scale.md has the wall times). Attacks, co-watch and the
cold-start curve run on the local engine only.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from omega.brain import Brain, BrainConfig
from omega.brain.catalog import SharedCatalog
from omega.clock import ManualClock
from omega.federation.engines import Engine
from omega.sim.constellation import SimConstellation
from omega.sim.datasets import Dataset
from omega.sim.engine_fleet import write_catalog
from omega.sim.engine_tasks import Carried, Event, ReplayTask, merge_audit, replay_batch
from omega.sim.evaluation import Split
from omega.sim.fleet import (
    FleetConfig,
    FleetRun,
    Viewer,
    brain_config,
    event_order,
    fleet_run,
    new_tv,
)
from omega.sync.cursors import CatalogOrder

__all__ = ["EngineReplay", "Step", "replay_on_engine", "schedule"]

Checkpoint = Callable[[FleetRun, float], dict[str, float]]


@dataclass(frozen=True, slots=True)
class EngineReplay:
    """Where a dataset replay's brains run: ``engine``, at most ``batch`` viewers a task."""

    engine: Engine
    batch: int = 500


@dataclass(frozen=True, slots=True)
class Step:
    """Events ``start`` … ``stop - 1`` (in replay order); after the last, a round is
    decided (``check``) and/or a checkpoint measured (``mark``)."""

    start: int
    stop: int
    check: bool = False
    mark: bool = False


def schedule(
    who: npt.NDArray[np.int64],
    when: npt.NDArray[np.int64],
    config: FleetConfig,
    *,
    federated: bool,
    checkpoints: int,
) -> tuple[npt.NDArray[np.bool_], list[Step]]:
    """Which events a sync follows, and the steps, as ``omega.sim.fleet_replay`` decides
    them (from the timestamps alone)."""
    n = len(who)
    syncs = np.zeros(n, dtype=np.bool_)
    since: dict[int, int] = {}
    last: dict[int, float] = {}
    next_round = float(when[0]) + config.round_every_s if n else 0.0
    marks = {n * k // checkpoints - 1 for k in range(1, checkpoints)} if checkpoints > 1 else set()
    steps: list[Step] = []
    start = 0
    for i in range(n):
        v, ts = int(who[i]), float(when[i])
        since[v] = since.get(v, 0) + 1
        if federated and (
            since[v] >= config.sync_every or ts - last.get(v, -math.inf) >= config.sync_gap_s
        ):
            syncs[i], since[v], last[v] = True, 0, ts
        check = federated and ts >= next_round
        if check:
            next_round = ts + config.round_every_s
        if check or i in marks:
            steps.append(Step(start, i + 1, check, i in marks))
            start = i + 1
    if start < n:
        steps.append(Step(start, n))
    return syncs, steps


@dataclass(slots=True)
class _Fleet:
    """The driver's side of a replay: where the brains are and what it must hand tasks."""

    work: EngineReplay
    shared: SharedCatalog
    root: Path
    catalog: str
    config: FleetConfig
    settings: BrainConfig
    clocks: list[float]
    constellation: SimConstellation | None
    helper_key: bytes | None
    run: FleetRun
    pushes_since_round: int = 0

    def task(
        self, viewers: Sequence[int], events: Sequence[tuple[Event, ...]], catch_up: bool = False
    ) -> ReplayTask:
        sim = self.constellation
        maker = None
        if sim is not None:
            key = sim.manufacturer.key.private_bytes(
                Encoding.Raw, PrivateFormat.Raw, NoEncryption()
            )
            maker = (sim.manufacturer.manufacturer_id, sim.manufacturer.key_id, key)
        return ReplayTask(
            str(self.root),
            self.catalog,
            self.settings,
            tuple(viewers),
            tuple(self.clocks[v] for v in viewers),
            tuple(events),
            server=sim.url if sim is not None else None,
            maker=maker,
            helper_key=self.helper_key,
            pull_bytes=self.config.pull_bytes,
            shared_epsilon=self.config.shared_epsilon,
            catch_up=catch_up,
        )

    def run_tasks(self, per_viewer: dict[int, list[Event]], catch_up: bool = False) -> int:
        """The viewers' events as batches on the engine; the pushes they made."""
        viewers = sorted(per_viewer)
        if not viewers:
            return 0
        size = max(1, min(self.work.batch, -(-len(viewers) // self.work.engine.workers)))
        chunks = [viewers[i : i + size] for i in range(0, len(viewers), size)]
        tasks = [
            self.task(chunk, [tuple(per_viewer[v]) for v in chunk], catch_up) for chunk in chunks
        ]
        # Called here, not in a thread: the servers have threads of their own, and a
        # Ctrl-C (SIGTERM) then interrupts the wait and closes the servers and cluster
        # at once (a waiting thread would hold the run until its tasks gave up).
        results = self.work.engine.map(replay_batch, tasks)
        for viewer, events in per_viewer.items():
            self.clocks[viewer] = events[-1][0] if events else self.clocks[viewer]
        pushes = 0
        for result in results:
            self.run.syncs += result.syncs
            pushes += result.pushes
            if result.audit is not None and self.run.audit is not None:
                merge_audit(self.run.audit, result.audit)
        return pushes

    async def round(self) -> None:
        assert self.constellation is not None
        answer = await self.constellation.run_round()
        self.run.rounds += 1
        detail = answer.get("result")
        if isinstance(detail, dict) and detail.get("status") == "released":
            self.run.released_versions += 1

    def open(self, viewer: int) -> Viewer:
        clock = ManualClock(self.clocks[viewer])
        brain = Brain.open(
            self.root / f"viewer-{viewer}",
            clock=clock,
            config=self.settings,
            shared_catalog=self.shared,
        )
        Carried.load(self.root, viewer, brain)
        return Viewer(viewer, brain, clock)


class _Opened(dict[int, Viewer]):
    """The fleet's viewers, each opened from disk when first looked up (a checkpoint
    scores only the viewers whose training is over)."""

    def __init__(self, fleet: _Fleet) -> None:
        super().__init__()
        self.fleet = fleet

    def __missing__(self, viewer: int) -> Viewer:
        self[viewer] = opened = self.fleet.open(viewer)
        return opened


async def replay_on_engine(
    work: EngineReplay,
    dataset: Dataset,
    split: Split,
    shared: SharedCatalog,
    *,
    root: Path,
    config: FleetConfig,
    constellation: SimConstellation | None,
    helper_key: bytes | None = None,
    checkpoints: int = 0,
    on_checkpoint: Checkpoint | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FleetRun:
    """``omega.sim.fleet_replay.replay_fleet`` on ``work.engine`` (no attack, no co-watch): the
    same run, its brains reopened here once the replay is over."""
    if constellation is not None and constellation.url is None:
        raise ValueError("engine workers reach the constellation over HTTP: serve it")
    fleet = _start(work, dataset, split.n_viewers, shared, root, config, constellation, helper_key)
    who, what, stars, when = event_order(split)
    syncs, steps = schedule(
        who, when, config, federated=constellation is not None, checkpoints=checkpoints
    )
    ids = [item.item_id for item in dataset.items]
    for step in steps:
        per_viewer: dict[int, list[Event]] = {}
        for i in range(step.start, step.stop):
            event = (float(when[i]), ids[int(what[i])], float(stars[i]), bool(syncs[i]))
            per_viewer.setdefault(int(who[i]), []).append(event)
        fleet.pushes_since_round += fleet.run_tasks(per_viewer)
        if step.check and fleet.pushes_since_round >= config.round_min_pushes:
            await fleet.round()
            fleet.pushes_since_round = 0
        if step.mark and on_checkpoint is not None:
            _checkpoint(fleet, on_checkpoint, float(when[step.stop - 1]))
        if progress is not None:
            progress(step.stop, len(who))
    if constellation is not None:
        await _finish(fleet, constellation)
    fleet.run.viewers = {v: fleet.open(v) for v in range(split.n_viewers)}
    return fleet.run


def _start(
    work: EngineReplay,
    dataset: Dataset,
    viewers: int,
    shared: SharedCatalog,
    root: Path,
    config: FleetConfig,
    constellation: SimConstellation | None,
    helper_key: bytes | None,
) -> _Fleet:
    """Every viewer's brain made on disk as ``omega.sim.fleet`` opens it (the catalog
    order recorded when reports or co-watch name titles by position), each report RNG
    seeded as there, the catalog written for the workers, and the newcomer."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "carried").mkdir(exist_ok=True)
    settings = brain_config(config)
    run = fleet_run(dataset, config, settings, audited=constellation is not None)
    positioned = helper_key is not None or config.cowatch != "off"
    order = list(shared.catalog.ids) if positioned else []
    for v in range(viewers):
        brain = Brain.open(
            root / f"viewer-{v}", clock=ManualClock(0.0), config=settings, shared_catalog=shared
        )
        if order:
            CatalogOrder.record(brain, order)
        rng = random.Random(config.seed * 1_000_003 + v) if constellation is not None else None
        Carried(rng).save(root, v, brain)
        brain.close()
    catalog = write_catalog(root / "catalog.pickle", dataset, shared)
    fleet = _Fleet(
        work, shared, root, str(catalog), config, settings, [0.0] * viewers,
        constellation, helper_key, run,
    )  # fmt: skip
    if constellation is not None:
        run.newcomer = new_tv(
            viewers, root / "newcomer", shared, config=config, constellation=constellation,
            order=order,
        )  # fmt: skip
    return fleet


def _checkpoint(fleet: _Fleet, on_checkpoint: Checkpoint, ts: float) -> None:
    """The local replay's checkpoint, on the brains it needs, opened here and closed again
    (scoring sets a viewer's clock to its held-out time, as it does there)."""
    view = FleetRun(viewers=_Opened(fleet), audit=None)
    try:
        figures = on_checkpoint(view, ts)
    finally:
        for v, viewer in view.viewers.items():
            fleet.clocks[v] = viewer.clock.now()
            viewer.brain.close()
    fleet.run.checkpoints.append({"ts": ts, **figures})


async def _finish(fleet: _Fleet, constellation: SimConstellation) -> None:
    """``omega.sim.fleet_replay.finish``: everyone pushes what is left, a last round, everyone
    catches up, and the newcomer pulls the release."""
    everyone = range(len(fleet.clocks))
    fleet.run_tasks({v: [(fleet.clocks[v], None, 0.0, True)] for v in everyone})
    await fleet.round()
    fleet.run_tasks({v: [] for v in everyone}, catch_up=True)
    run, newcomer = fleet.run, fleet.run.newcomer
    if newcomer is None or newcomer.client is None:
        return
    newcomer.clock.set(max(fleet.clocks, default=0.0))
    for _ in range(50):
        result = await newcomer.client.sync()
        run.newcomer_syncs += 1
        run.newcomer_pull_bytes += result.pull_bytes
        if not result.more:
            break
