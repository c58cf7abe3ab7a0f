"""The local-only fleet of ``omega simulate``: replayed in this process, or in a second
process beside the federated fleet.

The two fleets share nothing while they replay (the local-only brains never sync, and
each fleet has its own directory under the run's), so on a machine with two cores the
local-only one can run beside Omega's instead of before it (``--processes 2``, the
CLI's default there): a plain ml-latest-small replay is then as long as Omega's fleet
plus the baselines, not the two fleets end to end. Either way the fleet comes back as
:class:`LocalOnly` — its checkpoints and each viewer's scores over the catalog at its
held-out time, which is all the report reads of it — so the figures are the same to
the last digit whichever way it ran (``tests/sim/test_local_only.py``).

The second process is started with ``spawn`` (a fork of a process running threads and an
event loop could inherit a held lock) and rebuilds what the fleet needs from picklable
parts: the dataset, its split, the options and the catalog's vectors and cells (the
vector index is rebuilt from them, as deterministic as the first build). It reports its
progress and then its result (or its error) on a queue; if it dies without a word (killed,
out of memory), the replay fails saying so, and it is stopped with the run.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from omega.brain.catalog import SharedCatalog
from omega.errors import OmegaError
from omega.sim._simulate_fleets import World, fleet_scorer, run_fleet
from omega.sim.content import catalog_items

__all__ = ["LocalOnly", "replay_local_only"]

LABEL = "local-only"
#: How often the second process reports its progress, in seconds.
_PROGRESS_EVERY = 0.5


@dataclass(frozen=True, slots=True)
class LocalOnly:
    """What the report reads of the local-only fleet."""

    #: The fleet's checkpoints (``FleetRun.checkpoints``).
    checkpoints: list[dict[str, float]]
    #: ``scores[v]``: viewer v's brain's score of every catalog row at its held-out time.
    scores: npt.NDArray[np.float32]
    #: The replay's wall time, scoring included.
    seconds: float

    def score(self, viewer: int) -> npt.NDArray[np.float32]:
        row: npt.NDArray[np.float32] = self.scores[viewer]
        return row


async def replay_local_only(
    world: World, finished_at: npt.NDArray[np.int64], *, processes: int = 1
) -> LocalOnly:
    """Replay the local-only fleet (in a second process when ``processes`` ≥ 2)."""
    if processes < 2 or world.options.engine is not None:
        return await _replay(world, finished_at)
    return await _in_second_process(world, finished_at)


async def _replay(world: World, finished_at: npt.NDArray[np.int64]) -> LocalOnly:
    start = time.perf_counter()
    run, _ = await run_fleet(world, federated=False, label=LABEL, finished_at=finished_at)
    try:
        score = fleet_scorer(run, world.split)
        scores = np.stack([score(v) for v in range(world.split.n_viewers)])
    finally:
        run.close()
    return LocalOnly(list(run.checkpoints), scores, time.perf_counter() - start)


async def _in_second_process(world: World, finished_at: npt.NDArray[np.int64]) -> LocalOnly:
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
    child = context.Process(
        target=_child, args=(parts, messages), name="omega-sim-local-only", daemon=True
    )
    child.start()
    loop = asyncio.get_running_loop()
    try:
        while True:
            try:
                message = await loop.run_in_executor(None, messages.get, True, 1.0)
            except queue.Empty:
                if not child.is_alive():
                    raise OmegaError(
                        f"the local-only fleet's process stopped without a result "
                        f"(exit code {child.exitcode}): out of memory, or killed"
                    ) from None
                continue
            kind = message[0]
            if kind == "progress":
                world.progress(LABEL, message[1], message[2])
            elif kind == "error":
                raise message[1]
            else:
                return LocalOnly(message[1], message[2], message[3])
    finally:
        if child.is_alive():
            child.terminate()
        child.join()
        messages.close()


def _child(parts: tuple[Any, ...], messages: multiprocessing.Queue[tuple[Any, ...]]) -> None:
    """The second process: rebuild the world, replay, send the result (or the error)."""
    dataset, split_, matrix, centroids, options, root, finished_at = parts
    last = 0.0

    def progress(label: str, n: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if label == LABEL and (now - last >= _PROGRESS_EVERY or n == total):
            last = now
            messages.put(("progress", n, total))

    try:
        shared = SharedCatalog(catalog_items(dataset), matrix, centroids)
        world = World(dataset, split_, shared, options, Path(root), progress)
        done = asyncio.run(_replay(world, finished_at))
        messages.put(("done", done.checkpoints, done.scores, done.seconds))
    except BaseException as exc:  # the parent raises it: nothing may end the child silently
        messages.put(("error", _picklable(exc)))


def _picklable(exc: BaseException) -> BaseException:
    """``exc``, or an :class:`OmegaError` with its words if it would not pickle."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return OmegaError(f"the local-only fleet failed: {type(exc).__name__}: {exc}")
    return exc
