"""What ``omega simulate`` measures beside Omega's fleet — the reference models, the
local-only fleet and, with ``--attack``, the attacked fleet — in this process first, or in
a second process while Omega's replays.

None of them needs Omega's fleet (the local-only brains never sync, the attacked fleet
has its own constellation, the baselines read the split alone, and each fleet has its
own directory under the run's), so on a machine with two cores they can run beside
Omega's instead of before or after it (``--processes 2``, the CLI's default there): a
plain ml-latest-small replay then takes about as long as Omega's fleet, not the sum of
everything. Either way they come back as :class:`Beside` — the baselines' figures and
per-viewer gains, the local-only fleet's checkpoints and each viewer's scores over the
catalog at its held-out time (all the report reads of it), the attacked fleet measured —
so the figures are the same to the last digit whichever way they ran
(``tests/sim/test_beside_omega.py``).

The second process is started with ``spawn`` (a fork of a process running threads and an
event loop could inherit a held lock) and rebuilds what it needs from picklable parts:
the dataset, its split, the options and the catalog's vectors and cells (the vector index
is rebuilt from them, as the first build was). It sends its progress, then its result or
its error, on a queue; if it dies without a word (killed, out of memory) the run fails
saying so, and it is stopped with the run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from omega.brain.catalog import SharedCatalog
from omega.errors import ConfigError, OmegaError
from omega.sim._processes import (
    deaf_to_ctrl_c,
    exit_with_parent,
    picklable,
    start_deaf_to_ctrl_c,
)
from omega.sim._simulate_attack import Attacked, replay_attacked
from omega.sim._simulate_fleets import World, fleet_scorer, run_fleet
from omega.sim.baselines import BASELINES
from omega.sim.content import catalog_items
from omega.sim.evaluation import evaluate
from omega.sim.metrics import FloatArray

__all__ = ["Beside", "run_beside"]

LOCAL = "local-only"
#: How often the second process reports a fleet's progress, in seconds.
_PROGRESS_EVERY = 0.5


@dataclass(frozen=True, slots=True)
class Beside:
    """The baselines' figures, what the report reads of the local-only fleet, and the
    attacked fleet measured (with ``--attack``)."""

    #: Each reference model's figures (``{"skipped": 1.0}``: its library is missing).
    baselines: dict[str, dict[str, float]]
    #: Each measured model's NDCG@10 per viewer (for the paired comparisons).
    gains: dict[str, list[FloatArray]]
    #: Seconds per baseline (``<name>_s``) and for the local-only fleet (``local_only_s``).
    timings: dict[str, float]
    #: The local-only fleet's checkpoints (``FleetRun.checkpoints``).
    checkpoints: list[dict[str, float]]
    #: ``scores[v]``: viewer v's local-only brain's score of every catalog row at its
    #: held-out time.
    scores: npt.NDArray[np.float32]
    #: With ``--attack``: the attacked fleet, measured.
    attacked: Attacked | None = None

    def local_score(self, viewer: int) -> npt.NDArray[np.float32]:
        row: npt.NDArray[np.float32] = self.scores[viewer]
        return row


async def run_beside(
    world: World, finished_at: npt.NDArray[np.int64], *, processes: int = 1
) -> Beside:
    """The baselines, the local-only fleet, then the attacked one if any (in a second
    process when ``processes`` ≥ 2 and no engine replays the fleets)."""
    if processes < 2 or world.options.engine is not None:
        return await _measure(world, finished_at)
    return await _in_second_process(world, finished_at)


async def _measure(world: World, finished_at: npt.NDArray[np.int64]) -> Beside:
    timings: dict[str, float] = {}
    gains: dict[str, list[FloatArray]] = {}
    baselines = _baselines(world, timings, gains)
    start = time.perf_counter()
    run, _ = await run_fleet(world, federated=False, label=LOCAL, finished_at=finished_at)
    try:
        score = fleet_scorer(run, world.split)
        scores = np.stack([score(v) for v in range(world.split.n_viewers)])
    finally:
        run.close()
    timings["local_only_s"] = time.perf_counter() - start
    attacked = None
    if world.options.attack is not None:
        attacked = await replay_attacked(world)
        timings["attack_s"] = attacked.seconds
    return Beside(baselines, gains, timings, list(run.checkpoints), scores, attacked)


def _baselines(
    world: World, timings: dict[str, float], gains: dict[str, list[FloatArray]]
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


async def _in_second_process(world: World, finished_at: npt.NDArray[np.int64]) -> Beside:
    context = multiprocessing.get_context("spawn")
    messages: multiprocessing.Queue[tuple[Any, ...]] = context.Queue()
    parts = (
        world.dataset,
        world.split,
        world.shared.matrix,
        world.shared.centroids,
        world.options,
        world.root,
        finished_at,
    )
    # The parts go by a queue's own thread, not as the process's arguments: those are
    # written by this thread, which waits until the child has read them all — held up for
    # the child's imports, and forever if it dies before (Ctrl-C reaches it too).
    inbox: multiprocessing.Queue[tuple[Any, ...]] = context.Queue()
    child = context.Process(
        target=_child, args=(inbox, messages), name="omega-sim-beside", daemon=True
    )
    start_deaf_to_ctrl_c(child)
    inbox.put(parts)
    loop = asyncio.get_running_loop()
    try:
        while True:
            try:
                message = await loop.run_in_executor(None, messages.get, True, 1.0)
            except queue.Empty:
                if not child.is_alive():
                    raise OmegaError(
                        "the second process (baselines, the local-only and attacked fleets) "
                        f"stopped without a result (exit code {child.exitcode}): out of "
                        "memory, or killed"
                    ) from None
                continue
            if message[0] == "progress":
                world.progress(*message[1:])
            elif message[0] == "error":
                raise message[1]
            else:
                result: Beside = message[1]
                return result
    finally:
        if child.is_alive():
            child.terminate()
        child.join()
        inbox.cancel_join_thread()  # parts a dead child never read are not waited for
        inbox.close()
        messages.close()


def _child(
    inbox: multiprocessing.Queue[tuple[Any, ...]],
    messages: multiprocessing.Queue[tuple[Any, ...]],
) -> None:
    """The second process: rebuild the world, measure, send the result (or the error)."""
    deaf_to_ctrl_c()
    threading.Thread(target=exit_with_parent, name="omega-sim-parent", daemon=True).start()
    dataset, split_, matrix, centroids, options, root, finished_at = inbox.get()
    last: dict[str, float] = {}

    def progress(label: str, n: int, total: int) -> None:
        now = time.monotonic()
        if n >= total or now - last.get(label, 0.0) >= _PROGRESS_EVERY:
            last[label] = now
            messages.put(("progress", label, n, total))

    try:
        shared = SharedCatalog(catalog_items(dataset), matrix, centroids)
        # Its fleets' servers in this process: a daemonic process may start no other.
        options = dataclasses.replace(options, processes=1)
        world = World(dataset, split_, shared, options, Path(root), progress)
        messages.put(("done", asyncio.run(_measure(world, finished_at))))
    except BaseException as exc:  # the parent raises it: nothing may end the child silently
        messages.put(("error", picklable(exc, "the second process")))
