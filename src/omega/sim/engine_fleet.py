"""A synthetic fleet's days on an engine: brains in batches, one task per batch and step.

The fleet is :func:`~omega.sim.viewers.synthetic_dataset`'s viewers (one TV each), over a
real constellation reached over HTTP at ``server`` (``omega simulate --engine dask`` starts
``omega serve`` for it). Simulated time is cut into steps (``steps_per_day``); in each
step every batch of ``batch`` TVs is one task on the engine: it opens its TVs' brains
(under ``work_dir``, which every engine worker must see), replays their events of the
step in time order, syncs each TV that watched something (push + pull, the real protocol;
the first sync registers the TV with a certificate from the simulator's manufacturer),
and closes them. Between steps the driver runs a federation round through the admin API,
so the next step's pulls carry what the fleet released.

Why batches: a task costs the engine milliseconds (Dask here, docs/scale.md) and a TV's
step a few; one task per TV would spend as much on scheduling as on the TVs.

Within a step TVs do not see each other (a release changes only at a round), so the
batches of a step are independent and their order does not matter. If an engine worker
dies mid-batch, Dask runs the batch again elsewhere: its TVs that were done replay the
step's events a second time into their brains (the sync is idempotent server-side; the
brains' learning is not), so such a run's figures are slightly off, never lost.
"""

from __future__ import annotations

import asyncio
import functools
import pickle
import random
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from omega.brain import Brain, BrainConfig
from omega.brain.catalog import SharedCatalog
from omega.clock import ManualClock
from omega.errors import OmegaError
from omega.federation.engines import Engine
from omega.protocol.attestation import Manufacturer
from omega.sim.content import catalog_items
from omega.sim.datasets import Dataset
from omega.sim.fleet import rating_to_view
from omega.sync.client import SyncClient
from omega.sync.retry import RetryPolicy
from omega.sync.transport import HttpTransport

__all__ = [
    "FleetDay",
    "StepFigures",
    "fleet_steps",
    "load_catalog",
    "run_fleet_days",
    "write_catalog",
]

DAY = 86_400


@dataclass(frozen=True, slots=True)
class StepFigures:
    """What one batch did in one step (summed over batches by the driver)."""

    tvs: int = 0
    events: int = 0
    syncs: int = 0
    pushes: int = 0
    push_bytes: int = 0
    pull_bytes: int = 0
    sync_errors: int = 0
    #: Peak resident memory of the process that ran the batch (MB; the largest counts).
    peak_rss_mb: float = 0.0
    #: The first failed sync's error, to say what went wrong ("" when none failed).
    first_error: str = ""

    def plus(self, other: StepFigures) -> StepFigures:
        return StepFigures(
            self.tvs + other.tvs,
            self.events + other.events,
            self.syncs + other.syncs,
            self.pushes + other.pushes,
            self.push_bytes + other.push_bytes,
            self.pull_bytes + other.pull_bytes,
            self.sync_errors + other.sync_errors,
            max(self.peak_rss_mb, other.peak_rss_mb),
            self.first_error or other.first_error,
        )


@dataclass(frozen=True, slots=True)
class _Batch:
    """One task: these TVs' events of one step, and how to reach the constellation."""

    server: str
    root: str
    maker: tuple[str, str, bytes]  # manufacturer id, key id, raw private key
    catalog: str  # the pickled SharedCatalog under ``root`` (read once per process)
    config: BrainConfig
    tvs: tuple[int, ...]
    #: Per TV (same order): its events of the step as (timestamp, item id, stars).
    events: tuple[tuple[tuple[int, str, float], ...], ...]
    seed: int


@dataclass(slots=True)
class FleetDay:
    """The whole run's figures, and per step the seconds and the round's answer."""

    tvs: int
    batches_per_step: int
    totals: StepFigures = field(default_factory=StepFigures)
    steps: list[dict[str, Any]] = field(default_factory=list)


def fleet_steps(dataset: Dataset, steps_per_day: int) -> list[dict[int, list[int]]]:
    """The dataset's rows per step, per TV (row indices in time order). Steps are aligned
    to the UTC day (a day's first step starts at midnight); steps without events are left
    out."""
    step_s = DAY // steps_per_day
    first = int(dataset.timestamps.min())
    start = first - first % step_s
    slot = (dataset.timestamps - start) // step_s
    order = np.lexsort((dataset.timestamps, dataset.users))
    out: list[dict[int, list[int]]] = [{} for _ in range(int(slot.max()) + 1)]
    for row in order.tolist():
        out[int(slot[row])].setdefault(int(dataset.users[row]), []).append(row)
    return [step for step in out if step]


def run_fleet_days(
    engine: Engine,
    dataset: Dataset,
    shared: SharedCatalog,
    *,
    server: str,
    maker: Manufacturer,
    work_dir: Path,
    run_round: Callable[[], dict[str, Any]],
    batch: int = 500,
    steps_per_day: int = 4,
    seed: int = 0,
    config: BrainConfig | None = None,
) -> FleetDay:
    """Every step of the dataset's days as batches on ``engine``, a round after each."""
    config = config or BrainConfig(codebook_cells=len(shared.centroids), report_epsilon=0.0)
    raw = maker.key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    work_dir.mkdir(parents=True, exist_ok=True)
    catalog = write_catalog(work_dir / "catalog.pickle", dataset, shared)
    ids = [item.item_id for item in dataset.items]
    day = FleetDay(tvs=dataset.n_users, batches_per_step=0)
    for number, rows in enumerate(fleet_steps(dataset, steps_per_day)):
        started = time.perf_counter()
        tvs = sorted(rows)
        work = [
            _Batch(
                server,
                str(work_dir),
                (maker.manufacturer_id, maker.key_id, raw),
                str(catalog),
                config,
                tuple(chunk),
                tuple(_events(dataset, ids, rows[tv]) for tv in chunk),
                seed,
            )
            for chunk in _chunks(tvs, batch)
        ]
        figures = StepFigures()
        for result in engine.map(run_batch, work):
            figures = figures.plus(result)
        replay_s = time.perf_counter() - started
        answer = run_round()
        day.totals = day.totals.plus(figures)
        day.batches_per_step = max(day.batches_per_step, len(work))
        day.steps.append(
            {
                "step": number,
                "tvs": figures.tvs,
                "syncs": figures.syncs,
                "replay_s": round(replay_s, 2),
                "round_s": round(time.perf_counter() - started - replay_s, 2),
                "round": (answer.get("result") or {}).get("status"),
            }
        )
    return day


def run_batch(batch: _Batch) -> StepFigures:
    """One task: replay a batch of TVs' events of one step and sync each (on a worker)."""
    return asyncio.run(_run_batch(batch))


async def _run_batch(batch: _Batch) -> StepFigures:
    manufacturer_id, key_id, raw = batch.maker
    maker = Manufacturer(manufacturer_id, key_id, Ed25519PrivateKey.from_private_bytes(raw))
    figures = StepFigures()
    async with HttpTransport(batch.server) as transport:
        for tv, events in zip(batch.tvs, batch.events, strict=True):
            figures = figures.plus(await _tv_step(batch, maker, transport, tv, events))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return StepFigures(**{**_as_dict(figures), "peak_rss_mb": round(peak, 1)})


async def _tv_step(
    batch: _Batch,
    maker: Manufacturer,
    transport: HttpTransport,
    tv: int,
    events: Sequence[tuple[int, str, float]],
) -> StepFigures:
    """One TV's events of the step, then one sync."""
    clock = ManualClock(float(events[0][0]))
    brain = Brain.open(
        Path(batch.root) / f"tv-{tv}",
        clock=clock,
        config=batch.config,
        shared_catalog=load_catalog(batch.catalog),
    )
    try:
        for ts, item, stars in events:
            clock.set(float(ts))
            kind, fraction = rating_to_view(stars)
            if kind == "skip":
                brain.track_skip(item, at_seconds=60.0)
            else:
                brain.track_view(item, watch_fraction=fraction)
        client = SyncClient(
            brain,
            transport,
            report_rng=random.Random(batch.seed * 1_000_003 + tv),
            # A TV that cannot sync counts as a failed sync at once: a real TV backs off
            # for minutes, which would stall its whole batch here.
            retry=RetryPolicy(attempts=1),
            attestation=maker.device(f"tv-{tv}", model="sim-tv"),  # signs with real time
        )
        try:
            result = await client.sync()
        except OmegaError as exc:  # counted and reported; the fleet goes on
            return StepFigures(tvs=1, events=len(events), sync_errors=1, first_error=str(exc))
        return StepFigures(
            tvs=1,
            events=len(events),
            syncs=1,
            pushes=int(result.batch_id is not None),
            push_bytes=result.push_bytes,
            pull_bytes=result.pull_bytes,
        )
    finally:
        brain.close()


def write_catalog(path: Path, dataset: Dataset, shared: SharedCatalog) -> Path:
    """Write ``shared``'s parts where engine workers read them with :func:`load_catalog`."""
    parts = (catalog_items(dataset), shared.matrix, shared.centroids)  # the index is rebuilt
    path.write_bytes(pickle.dumps(parts, protocol=pickle.HIGHEST_PROTOCOL))
    return path


@functools.cache
def load_catalog(path: str) -> SharedCatalog:
    """The fleet's catalog, read once per worker process (our own file, written by the
    driver of this run)."""
    items, matrix, centroids = pickle.loads(Path(path).read_bytes())
    return SharedCatalog(items, matrix, centroids)


def _events(
    dataset: Dataset, ids: list[str], rows: list[int]
) -> tuple[tuple[int, str, float], ...]:
    return tuple(
        (int(dataset.timestamps[r]), ids[int(dataset.items_idx[r])], float(dataset.ratings[r]))
        for r in rows
    )


def _chunks(values: list[int], size: int) -> list[list[int]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _as_dict(figures: StepFigures) -> dict[str, Any]:
    return {name: getattr(figures, name) for name in StepFigures.__slots__}
