"""The fleets one ``omega simulate`` run replays: the world they share (the dataset, its
held-out split, the embedded catalog), one fleet's replay against its constellation, and
the figures a replayed fleet scores on the protocol's rule."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from omega.brain.catalog import SharedCatalog
from omega.sim.content import shared_catalog
from omega.sim.datasets import Dataset
from omega.sim.engine_replay import replay_on_engine
from omega.sim.evaluation import Split, ViewerScorer, evaluate, split, validation_dataset
from omega.sim.fleet import FleetRun
from omega.sim.fleet_replay import replay_fleet
from omega.sim.metrics import FloatArray
from omega.sim.personalisation import AfterReplay
from omega.sim.servers import federation

if TYPE_CHECKING:
    from omega.sim.simulate import SimulationOptions

__all__ = [
    "Progress",
    "World",
    "build_world",
    "fleet_metrics",
    "fleet_scorer",
    "run_fleet",
    "viewer_metrics",
]

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class World:
    """What every fleet of one simulation replays, and where it keeps its files."""

    dataset: Dataset
    split: Split
    shared: SharedCatalog
    options: SimulationOptions
    root: Path
    progress: Progress


def build_world(
    dataset: Dataset,
    options: SimulationOptions,
    progress: Progress,
    timings: dict[str, float],
    root: Path,
) -> World:
    """Hold out each viewer's interaction and embed the catalog (timed as ``embed_s``);
    the fleets' brains go under ``root``."""
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
    return World(dataset, split_, shared, options, root, progress)


def viewer_metrics(
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


def fleet_scorer(
    run: FleetRun, split_: Split, *, reuse: bool = False
) -> Callable[[int], npt.NDArray[np.float32]]:
    """Each viewer's brain's scores at its held-out time; ``reuse``: a viewer whose brain
    the replay has not changed since it was last scored so (``Viewer.changes``) is not
    scored again (the local replay's checkpoints)."""

    def score(v: int) -> npt.NDArray[np.float32]:
        viewer = run.viewers[v]
        kept = run.scored.get(v) if reuse else None
        if kept is not None and kept[0] == viewer.changes:
            return kept[1]
        viewer.clock.set(float(split_.holdout_timestamp[v]))
        scores = viewer.brain.score_all()
        if reuse:
            run.scored[v] = (viewer.changes, scores)
        return scores

    return score


def fleet_metrics(
    run: FleetRun,
    split_: Split,
    viewers: Iterable[int],
    *,
    seed: int = 0,
    coverage: bool = True,
    gains: list[FloatArray] | None = None,
    reuse: bool = False,
) -> dict[str, float]:
    """Omega's (or local-only's) figures; ``coverage=False`` skips coverage@k (checkpoints);
    ``reuse``: see :func:`fleet_scorer`."""
    score = fleet_scorer(run, split_, reuse=reuse)
    return viewer_metrics(split_, viewers, score, seed=seed, coverage=coverage, gains=gains)


async def run_fleet(
    world: World,
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
                else functools.partial(
                    _checkpoint, world.split, finished_at, attackers, reuse=True
                ),
                progress=lambda n, total: world.progress(label, n, total),
                helper_key=helper_key,
                private=private,
            )
        if constellation is not None:
            run.constellation = constellation.where
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
    *,
    reuse: bool = False,
) -> dict[str, float]:
    """The quality so far, over the honest viewers whose training ended by ``ts``
    (``reuse``: see :func:`fleet_scorer`)."""
    done = [int(v) for v in np.flatnonzero(finished_at <= ts) if int(v) not in attackers]
    figures = fleet_metrics(run, split_, done, coverage=False, reuse=reuse) if done else {}
    return {
        "viewers": float(len(done)),
        "ndcg@10": figures.get("ndcg@10", math.nan),
        "hr@10": figures.get("hr@10", math.nan),
    }
