"""``omega simulate``: replay real viewing logs through a federated fleet and judge it.

Evaluation follows DESIGN.md exactly: each viewer's last interaction (by timestamp, then
item id as a number) is held out; all items the viewer has not interacted with are
ranked; every row (Omega, local-only, each baseline) is measured by
``omega.sim.evaluation.evaluate``, with the same masking of seen items and the same
tie-fair headline (expected figures under uniformly random tie-breaking; pessimistic and
optimistic beside them).
"""

from __future__ import annotations

import functools
import math
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from omega.brain.catalog import SharedCatalog
from omega.errors import ConfigError
from omega.sim.attacks import AttackKind
from omega.sim.baselines import BASELINES
from omega.sim.content import shared_catalog
from omega.sim.datasets import Dataset
from omega.sim.engine_replay import EngineReplay, replay_on_engine
from omega.sim.evaluation import Split, ViewerScorer, evaluate, split, validation_dataset
from omega.sim.fleet import FleetConfig, FleetRun, replay_fleet
from omega.sim.metrics import FloatArray, paired_difference
from omega.sim.personalisation import (
    AfterReplay,
    ColdStartSetup,
    personalisation,
    probe_viewers,
)
from omega.sim.servers import federation

__all__ = ["SimulationOptions", "run_simulation"]

Progress = Callable[[str, int, int], None]


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


@dataclass(frozen=True, slots=True)
class _World:
    """What every fleet of one simulation replays, and where it keeps its files."""

    dataset: Dataset
    split: Split
    shared: SharedCatalog
    options: SimulationOptions
    root: Path
    progress: Progress


def _metrics(
    split_: Split,
    viewers: Iterable[int],
    score: Callable[[int], npt.NDArray[np.float32]],
    *,
    seed: int = 0,
    coverage: bool = True,
    gains: list[FloatArray] | None = None,
) -> dict[str, float]:
    """The protocol's figures for one viewer at a time, by the rule every baseline uses."""
    chosen = np.fromiter(viewers, dtype=np.int64)
    scorer = ViewerScorer(score)
    figures = evaluate(split_, scorer, viewers=chosen, seed=seed, coverage=coverage, gains=gains)
    return {name: float(value) for name, value in figures.items()}


def _fleet_scorer(run: FleetRun, split_: Split) -> Callable[[int], npt.NDArray[np.float32]]:
    def score(v: int) -> npt.NDArray[np.float32]:
        viewer = run.viewers[v]
        viewer.clock.set(float(split_.holdout_timestamp[v]))
        return viewer.brain.score_all()

    return score


def _fleet_metrics(
    run: FleetRun,
    split_: Split,
    viewers: Iterable[int],
    *,
    seed: int = 0,
    coverage: bool = True,
    gains: list[FloatArray] | None = None,
) -> dict[str, float]:
    """Omega's (or local-only's) figures; ``coverage=False`` skips coverage@k (checkpoints)."""
    score = _fleet_scorer(run, split_)
    return _metrics(split_, viewers, score, seed=seed, coverage=coverage, gains=gains)


def _exposure(run: FleetRun, split_: Split, viewers: list[int], target: int) -> float:
    score = _fleet_scorer(run, split_)
    hits = 0
    for v in viewers:
        scores = score(v)
        top = np.argpartition(-scores, 10)[:10]
        hits += int(target in top.tolist())
    return hits / max(1, len(viewers))


async def _fleet(
    world: _World,
    *,
    federated: bool,
    label: str,
    attackers: frozenset[int] = frozenset(),
    target_cell: int = -1,
    target_item: str | None = None,
    finished_at: npt.NDArray[np.int64] | None = None,
    after: AfterReplay | None = None,
) -> tuple[FleetRun, float]:
    """Replay the fleet ``label``, federated or local-only; with ``finished_at`` (when each
    viewer's training ends), measure the viewers done so far at evenly spaced checkpoints;
    ``after`` gets the replayed fleet and its constellation before that closes."""
    start = time.perf_counter()
    served = world.options.engine is not None
    async with federation(
        world.options, world.shared, world.root, label, federated=federated, served=served
    ) as (constellation, helper_key, private):
        if world.options.engine is not None:
            run = await replay_on_engine(
                world.options.engine,
                world.dataset,
                world.split,
                world.shared,
                root=world.root / label,
                config=world.options.fleet,
                constellation=constellation,
                helper_key=helper_key,
                checkpoints=world.options.checkpoints if finished_at is not None else 0,
                on_checkpoint=None
                if finished_at is None
                else functools.partial(_checkpoint, world.split, finished_at, attackers),
                progress=lambda n, total: world.progress(label, n, total),
            )
        else:
            run = await replay_fleet(
                world.dataset,
                world.split,
                world.shared,
                root=world.root / label,
                config=world.options.fleet,
                constellation=constellation,
                attack=world.options.attack if attackers else None,
                attackers=attackers,
                target_cell=target_cell,
                target_item=target_item,
                checkpoints=world.options.checkpoints if finished_at is not None else 0,
                on_checkpoint=None
                if finished_at is None
                else functools.partial(_checkpoint, world.split, finished_at, attackers),
                progress=lambda n, total: world.progress(label, n, total),
                helper_key=helper_key,
                private=private,
            )
        if constellation is not None:
            stats = await constellation.stats()
            run.cowatch_dp = stats.get("cowatch_dp")
            run.checkpoints.append({"released_patterns": float(stats.get("released_patterns", 0))})
            if after is not None:
                await after(run, constellation)
    return run, time.perf_counter() - start


def _checkpoint(
    split_: Split,
    finished_at: npt.NDArray[np.int64],
    attackers: frozenset[int],
    run: FleetRun,
    ts: float,
) -> dict[str, float]:
    """The quality so far, over the honest viewers whose training ended by ``ts``."""
    done = [int(v) for v in np.flatnonzero(finished_at <= ts) if int(v) not in attackers]
    figures = _fleet_metrics(run, split_, done, coverage=False) if done else {}
    return {
        "viewers": float(len(done)),
        "ndcg@10": figures.get("ndcg@10", math.nan),
        "hr@10": figures.get("hr@10", math.nan),
    }


async def run_simulation(
    dataset: Dataset, options: SimulationOptions, progress: Progress
) -> dict[str, Any]:
    """Everything ``omega simulate`` reports, as one JSON-ready dict."""
    wall = time.perf_counter()
    _check(options)
    timings: dict[str, float] = {}
    world = _world(dataset, options, progress, timings)
    split_ = world.split
    cold_start = _cold_start(world)  # a bad --cold-start fails now, not after the replays
    gains: dict[str, list[FloatArray]] = {}  # each row's NDCG@10 per viewer
    baselines = _baselines(world, timings, gains)
    finished_at = np.array(
        [int(split_.train_history(v)[2].max(initial=0)) for v in range(split_.n_viewers)],
        dtype=np.int64,
    )
    local, timings["local_only_s"] = await _fleet(
        world, federated=False, label="local-only", finished_at=finished_at
    )
    everyone = range(split_.n_viewers)
    gains["local_only"] = []
    baselines["local_only"] = _fleet_metrics(
        local, split_, everyone, seed=options.seed, gains=gains["local_only"]
    )
    omega, timings["omega_s"] = await _fleet(
        world, federated=True, label="omega", finished_at=finished_at
    )
    omega_gains: list[FloatArray] = []
    omega_figures = _fleet_metrics(omega, split_, everyone, seed=options.seed, gains=omega_gains)
    _pair_with_omega(baselines, omega_gains, gains)
    result = _result(world, omega, omega_figures, baselines, local)
    start = time.perf_counter()
    result["personalisation"] = await personalisation(
        split_, _fleet_scorer(omega, split_), _fleet_scorer(local, split_), cold_start
    )
    timings["personalisation_s"] = time.perf_counter() - start
    local.close()

    if options.attack is not None:
        result["attack"], timings["attack_s"] = await _attack(world, omega)
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


def _world(
    dataset: Dataset, options: SimulationOptions, progress: Progress, timings: dict[str, float]
) -> _World:
    """Hold out each viewer's interaction and embed the catalog (timed as ``embed_s``)."""
    root = options.work_dir or Path(tempfile.mkdtemp(prefix="omega-sim-"))
    if options.validation:
        dataset = validation_dataset(dataset)
    split_ = split(dataset)
    start = time.perf_counter()
    shared = shared_catalog(
        dataset,
        cells=options.fleet.cells,
        cache_dir=options.cache_dir,
        seed=options.seed,
        progress=lambda n, total: progress("embedding catalog", n, total),
    )
    timings["embed_s"] = time.perf_counter() - start
    return _World(dataset, split_, shared, options, root, progress)


def _pair_with_omega(
    rows: dict[str, dict[str, float]], omega: list[FloatArray], gains: dict[str, list[FloatArray]]
) -> None:
    """Each row's ``omega_minus_ndcg@10`` (Omega's NDCG@10 less the row's, on the same
    viewers) and its standard error ``omega_minus_ndcg@10_se``: whether Omega is above a
    row by more than one run's noise."""
    for name, row_gains in gains.items():
        if omega and row_gains and name in rows:
            diff, se = paired_difference(omega[0], row_gains[0])
            rows[name] |= {"omega_minus_ndcg@10": diff, "omega_minus_ndcg@10_se": se}


def _baselines(
    world: _World, timings: dict[str, float], gains: dict[str, list[FloatArray]]
) -> dict[str, dict[str, float]]:
    """The reference models' figures (a model whose library is missing is skipped), and
    each one's NDCG@10 per viewer in ``gains``."""
    baselines: dict[str, dict[str, float]] = {}
    for name in world.options.baselines:
        start = time.perf_counter()
        try:
            scorer = BASELINES[name](world.split, world.options.seed)
        except ConfigError as exc:
            baselines[name] = {"skipped": 1.0}
            world.progress(f"{name} skipped: {exc}", 1, 1)
            continue
        gains[name] = []
        figures = evaluate(world.split, scorer, seed=world.options.seed, gains=gains[name])
        baselines[name] = {k: float(v) for k, v in figures.items()}
        timings[f"{name}_s"] = time.perf_counter() - start
        world.progress(f"baseline {name}", 1, 1)
    return baselines


def _timeline(
    world: _World,
    local: FleetRun,
    omega: FleetRun,
    omega_figures: dict[str, float],
    local_figures: dict[str, float],
) -> list[dict[str, float]]:
    """Omega against local-only at each checkpoint, then at the end of the replay."""
    marks = [
        (mark_local, mark_omega)
        for mark_local, mark_omega in zip(local.checkpoints, omega.checkpoints, strict=False)
        if "ts" in mark_local and "ts" in mark_omega
    ]
    timeline: list[dict[str, float]] = [
        {
            "ts": mark_omega["ts"],
            "viewers": int(mark_omega["viewers"]),
            "omega_ndcg@10": mark_omega["ndcg@10"],
            "local_only_ndcg@10": mark_local["ndcg@10"],
            "omega_hr@10": mark_omega["hr@10"],
            "local_only_hr@10": mark_local["hr@10"],
        }
        for mark_local, mark_omega in marks
    ]
    timeline.append(
        {
            "ts": float(world.split.holdout_timestamp.max(initial=0)),
            "viewers": world.split.n_viewers,
            "omega_ndcg@10": omega_figures["ndcg@10"],
            "local_only_ndcg@10": local_figures["ndcg@10"],
            "omega_hr@10": omega_figures["hr@10"],
            "local_only_hr@10": local_figures["hr@10"],
        }
    )
    return timeline


#: The privacy audit's figures a result carries, under the same names.
_AUDITED = (
    "push_bytes_median",
    "pull_bytes_median",
    "push_bytes_p95",
    "pull_bytes_p95",
    "raw_items_sent",
    "event_records_sent",
    "search_strings_sent",
    "requests_inspected",
    "patterns_sent",
    "frequency_reports_sent",
    "report_epsilon",
)
_AUDITED_SHARED = (
    "shared_reports_sent",
    "shared_epsilon",
    "epsilon_per_viewer_median",
    "epsilon_per_viewer_max",
)


def _result(
    world: _World,
    omega: FleetRun,
    omega_figures: dict[str, float],
    baselines: dict[str, dict[str, float]],
    local: FleetRun,
) -> dict[str, Any]:
    """The JSON-ready result, without the attack and the timings."""
    dataset, options = world.dataset, world.options
    assert omega.audit is not None
    audit = omega.audit.summary()
    released = next(
        (c["released_patterns"] for c in omega.checkpoints if "released_patterns" in c), 0.0
    )
    timeline = _timeline(world, local, omega, omega_figures, baselines["local_only"])
    return {
        "dataset": str(dataset.path),
        "format": str(dataset.format),
        "viewers": world.split.n_viewers,
        "items": dataset.n_items,
        "events": dataset.n_ratings,
        "seed": options.seed,
        "holdout": "second-to-last (validation)" if options.validation else "last",
        "cells": len(world.shared.centroids),
        "constellation": options.server or "in-process (ASGI, SQLite)",
        "omega": omega_figures,
        "baselines": baselines,
        **{name: audit[name] for name in _AUDITED},
        "reports": options.fleet.reports,
        **{name: audit[name] for name in _AUDITED_SHARED},
        "syncs": omega.syncs,
        "rounds": omega.rounds,
        "released_patterns": int(released),
        "cowatch": _cowatch_summary(omega),
        "timeline": timeline,
        "sync_bytes": {"push": omega.audit.push_bytes, "pull": omega.audit.pull_bytes},
    }


def _cold_start(world: _World) -> ColdStartSetup | None:
    """How the cold-start curve replays its fleet without its probes (None: not asked)."""
    if not world.options.cold_start:
        return None

    async def replay(rest: Dataset, after: AfterReplay) -> None:
        fleet_world = replace(world, dataset=rest, split=split(rest))
        run, _ = await _fleet(fleet_world, federated=True, label="cold-start", after=after)
        run.close()

    return ColdStartSetup(
        shared=world.shared,
        probes=probe_viewers(world.split, world.options.cold_start, world.options.seed),
        config=world.options.fleet,
        root=world.root / "cold-start-tvs",
        replay=replay,
    )


def _cowatch_summary(run: FleetRun) -> dict[str, Any] | None:
    """The co-watch source's figures: the stand-in's, or the private protocol's (its
    audit, requests, rows released and what a new TV pulled); None without co-watch."""
    if run.cowatch is not None:
        return dict(run.cowatch.summary())
    if run.private is None:
        return None
    return {
        "source": "private (STAR through the helper, two-server OPRF, k ≥ 3 distinct TVs)",
        **run.private.summary(run.forged),
        "cowatch_rows_released": run.cowatch_rows,
        "tvs_holding_rows": sum(1 for v in run.viewers.values() if v.brain.cowatch.version()),
        "newcomer_pull_bytes": run.newcomer_pull_bytes,
        "newcomer_syncs": run.newcomer_syncs,
        "dp": run.cowatch_dp,
    }


def _on_first_screen(run: FleetRun, item_id: str) -> bool | None:
    screen = run.first_screen()
    return None if screen is None else item_id in screen


async def _attack(world: _World, clean: FleetRun) -> tuple[dict[str, Any], float]:
    """Replay the fleet again with a share of attackers; compare the honest viewers."""
    dataset, split_, options = world.dataset, world.split, world.options
    rng = np.random.default_rng(options.seed)
    n = split_.n_viewers
    attackers = frozenset(
        int(v) for v in rng.choice(n, size=max(1, round(options.attackers * n)), replace=False)
    )
    honest = [v for v in range(n) if v not in attackers]
    # The target: a title few viewers ever watched, so any exposure is the attack's doing.
    counts = np.bincount(split_.train_items, minlength=dataset.n_items)
    rare = np.flatnonzero((counts >= 1) & (counts <= 2))
    target = int(rng.choice(rare if len(rare) else np.arange(dataset.n_items)))
    target_cell = int(world.shared.catalog.cells[target])
    target_item = dataset.items[target]
    attacked, seconds = await _fleet(
        world,
        federated=True,
        label="attacked",
        attackers=attackers,
        target_cell=target_cell,
        target_item=target_item.item_id,
    )
    clean_figures = _fleet_metrics(clean, split_, honest, seed=options.seed)
    attacked_figures = _fleet_metrics(attacked, split_, honest, seed=options.seed)
    summary = {
        "kind": options.attack,
        "attackers": round(len(attackers) / n, 4),
        # Every figure below is over these viewers only; the clean fleet over all of them is
        # the result's "omega" (one replay serves both).
        "honest_viewers": len(honest),
        "target_item": target_item.item_id,
        "target_title": target_item.title,
        "target_cell": target_cell,
        "ndcg@10_clean": clean_figures["ndcg@10"],
        "ndcg@10_attacked": attacked_figures["ndcg@10"],
        "hr@10_clean": clean_figures["hr@10"],
        "hr@10_attacked": attacked_figures["hr@10"],
        "target_exposure_clean": _exposure(clean, split_, honest, target),
        "target_exposure_attacked": _exposure(attacked, split_, honest, target),
        # Not one of issue 4's targets: whether a TV with no viewing yet sees the title.
        "target_on_new_tv_clean": _on_first_screen(clean, target_item.item_id),
        "target_on_new_tv_attacked": _on_first_screen(attacked, target_item.item_id),
        "released_patterns": attacked.checkpoints[-1].get("released_patterns", 0.0)
        if attacked.checkpoints
        else 0.0,
        # With --cowatch: the coalition's forged pairs went into the stand-in's counts.
        "cowatch": _cowatch_summary(attacked),
    }
    attacked.close()
    return summary, seconds
