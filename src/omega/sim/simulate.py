"""``omega simulate``: replay real viewing logs through a federated fleet and judge it.

Evaluation follows DESIGN.md exactly: each viewer's last interaction (by timestamp, then
item id as a number) is held out; all items the viewer has not interacted with are
ranked; every row (Omega, local-only, each baseline) is measured by
``omega.sim.evaluation.evaluate``, with the same masking of seen items and the same
tie-fair headline (expected figures under uniformly random tie-breaking; pessimistic and
optimistic beside them).

This module runs the parts in order; the fleets' replay and scoring are in
``_simulate_fleets``, the baselines and the local-only fleet (first, or in a second
process beside Omega's fleet) in ``_beside``, the result's shape in
``_simulate_result``, the attack in ``_simulate_attack``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from omega.errors import ConfigError
from omega.sim._beside import run_beside
from omega.sim._simulate_attack import attack_summary
from omega.sim._simulate_fleets import (
    Progress,
    World,
    build_world,
    fleet_metrics,
    fleet_scorer,
    run_fleet,
    viewer_metrics,
)
from omega.sim._simulate_result import build_result, pair_with_omega
from omega.sim.attacks import AttackKind
from omega.sim.datasets import Dataset
from omega.sim.engine_replay import EngineReplay
from omega.sim.evaluation import split
from omega.sim.fleet import FleetConfig, FleetRun
from omega.sim.metrics import FloatArray
from omega.sim.personalisation import (
    AfterReplay,
    ColdStartSetup,
    personalisation,
    probe_viewers,
)
from omega.workspace import work_directory

__all__ = ["SimulationOptions", "run_simulation"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationOptions:
    seed: int = 0
    fleet: FleetConfig = field(default_factory=FleetConfig)
    server: str | None = None
    admin_token: str | None = None
    attack: AttackKind | None = None
    attackers: float = 0.33
    baselines: tuple[str, ...] = (
        "popularity",
        "item_knn",
        "als",
        "transitions",
        "cowatch",
        "cowatch_k3",
    )
    work_dir: Path | None = None
    cache_dir: Path | None = None
    checkpoints: int = 6
    #: The helper a remote ``server`` counts two-server reports with (devices fetch its key).
    helper_url: str | None = None
    #: Hold out each viewer's second-to-last interaction (the last is dropped): for tuning
    #: settings without looking at the items the reported figures are measured on.
    validation: bool = False
    #: Viewers held out of a second federated fleet for the cold-start curve (0: none);
    #: see ``omega.sim.personalisation``.
    cold_start: int = 0
    #: Replay the fleets' brains in batches on an engine (``omega.sim.engine_replay``;
    #: the same figures); None: in this process, one event after another.
    engine: EngineReplay | None = None
    #: 2: replay the local-only fleet in a second process beside Omega's, and serve
    #: Omega's constellation and helper from a child process (the same figures;
    #: ``omega.sim._beside``, ``omega.sim._server_process``); 1: everything one after the
    #: other in this process.
    processes: int = 1


async def run_simulation(
    dataset: Dataset, options: SimulationOptions, progress: Progress
) -> dict[str, Any]:
    """Everything ``omega simulate`` reports, as one JSON-ready dict. The fleets' brains
    live under ``options.work_dir``, kept; without one, in a temporary directory removed
    at the end (a full replay leaves gigabytes of brains)."""
    _check(options)
    with work_directory(options.work_dir, "omega-sim-") as root:
        return await _simulate(dataset, options, progress, root)


async def _simulate(
    dataset: Dataset, options: SimulationOptions, progress: Progress, root: Path
) -> dict[str, Any]:
    wall = time.perf_counter()
    timings: dict[str, float] = {}
    world = build_world(dataset, options, progress, timings, root)
    split_ = world.split
    cold_start = _cold_start(world)  # a bad --cold-start fails now, not after the replays
    finished_at = np.array(
        [int(split_.train_history(v)[2].max(initial=0)) for v in range(split_.n_viewers)],
        dtype=np.int64,
    )
    # The baselines, the local-only and attacked fleets: first, or beside Omega's fleet in
    # a second process. Either failing fails the run at once, and stops the other.
    beside = asyncio.ensure_future(run_beside(world, finished_at, processes=options.processes))
    fleet: asyncio.Future[tuple[FleetRun, float]] | None = None
    try:
        if options.processes < 2:
            await beside
        fleet = asyncio.ensure_future(
            run_fleet(world, federated=True, label="omega", finished_at=finished_at)
        )
        measured, (omega, timings["omega_s"]) = await asyncio.gather(beside, fleet)
    finally:
        tasks: list[asyncio.Future[Any]] = [beside] if fleet is None else [beside, fleet]
        for task in tasks:
            task.cancel()  # nothing, once done
        await asyncio.gather(*tasks, return_exceptions=True)
    timings |= measured.timings
    baselines, gains = measured.baselines, measured.gains  # gains: NDCG@10 per viewer
    everyone = range(split_.n_viewers)
    gains["local_only"] = []
    baselines["local_only"] = viewer_metrics(
        split_, everyone, measured.local_score, seed=options.seed, gains=gains["local_only"]
    )
    omega_gains: list[FloatArray] = []
    omega_figures = fleet_metrics(omega, split_, everyone, seed=options.seed, gains=omega_gains)
    pair_with_omega(baselines, omega_gains, gains)
    result = build_result(world, omega, omega_figures, baselines, measured.checkpoints)
    start = time.perf_counter()
    result["personalisation"] = await personalisation(
        split_, fleet_scorer(omega, split_), measured.local_score, cold_start
    )
    timings["personalisation_s"] = time.perf_counter() - start

    if measured.attacked is not None:  # with --attack
        result["attack"] = attack_summary(world, omega, measured.attacked)
    omega.close()
    timings["wall_s"] = time.perf_counter() - wall
    if options.engine is not None:
        result["engine"] = {
            "workers": options.engine.engine.workers,
            "batch": options.engine.batch,
        }
    result["timings"] = {k: round(v, 2) for k, v in timings.items()}
    result["wall_s"] = round(timings["wall_s"], 2)
    return result


def _check(options: SimulationOptions) -> None:
    if options.attack is not None and options.server is not None:
        raise ConfigError(
            "attacks need a fresh constellation per run: drop --server to use the in-process one"
        )
    if options.cold_start and options.server is not None:
        raise ConfigError(
            "--cold-start needs a fresh constellation for its fleet: drop --server to use the "
            "in-process one"
        )
    if not 0.0 < options.attackers < 0.5:
        raise ConfigError("--attackers must be a fraction in (0, 0.5)")
    if options.engine is not None and (
        options.attack is not None or options.cold_start or options.fleet.cowatch != "off"
    ):
        raise ConfigError(
            "--engine dask replays without --attack, --cowatch and --cold-start: use "
            "--engine local for those"
        )


def _cold_start(world: World) -> ColdStartSetup | None:
    """How the cold-start curve replays its fleet without its probes (None: not asked)."""
    if not world.options.cold_start:
        return None

    async def replay(rest: Dataset, after: AfterReplay) -> None:
        fleet_world = replace(world, dataset=rest, split=split(rest))
        run, _ = await run_fleet(fleet_world, federated=True, label="cold-start", after=after)
        run.close()

    return ColdStartSetup(
        shared=world.shared,
        probes=probe_viewers(world.split, world.options.cold_start, world.options.seed),
        config=world.options.fleet,
        root=world.root / "cold-start-tvs",
        replay=replay,
    )
