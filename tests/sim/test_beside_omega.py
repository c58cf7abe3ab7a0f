"""The baselines and the local-only fleet in a second process beside Omega's fleet
(``SimulationOptions.processes`` 2, the CLI's default on two cores): the same figures as
in this process, its progress shown here, and a second process that fails or dies fails
the run with its reason."""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from omega.errors import ConfigError, OmegaError
from omega.sim._beside import run_beside
from omega.sim._simulate_fleets import World, build_world
from omega.sim.fleet import FleetConfig
from omega.sim.simulate import SimulationOptions, run_simulation
from omega.sim.viewers import synthetic_dataset

FAST = FleetConfig(
    cells=16, sync_every=3, sync_gap_s=6 * 3600.0, round_every_s=12 * 3600.0, round_min_pushes=2
)
DATA = synthetic_dataset(titles=80, viewers=12, days=5, seed=3)


def _options(tmp_path: Path, processes: int, **more: Any) -> SimulationOptions:
    return SimulationOptions(
        fleet=FAST,
        baselines=("popularity",),
        work_dir=tmp_path / f"work-{processes}",
        cache_dir=tmp_path / "cache",
        checkpoints=3,
        processes=processes,
        **more,
    )


def _figures(result: dict[str, Any]) -> dict[str, Any]:
    """Everything a run reports but its times, the sealed frames' sizes (a fresh
    nonce and batch id each run) and where its constellation ran."""
    skip = {"timings", "wall_s", "sync_bytes", "push_bytes_median", "push_bytes_p95"}
    skip |= {"constellation"}
    skip |= {"pull_bytes_median", "pull_bytes_p95", "bytes_per_sync"}
    return {k: v for k, v in result.items() if k not in skip}


def test_the_attacked_fleet_beside_gives_the_same_attack_figures(tmp_path: Path) -> None:
    attack = {"attack": "promote-item", "attackers": 0.25}
    fleet = replace(FAST, cowatch="central-k3")
    runs = [
        asyncio.run(
            run_simulation(
                DATA, replace(_options(tmp_path, n, **attack), fleet=fleet), lambda *_: None
            )
        )
        for n in (1, 2)
    ]
    one, two = (json.dumps(_figures(r), sort_keys=True) for r in runs)
    assert one == two
    assert runs[1]["attack"]["cowatch"]["pairs_forged"] > 0
    assert runs[1]["timings"]["attack_s"] > 0


def test_the_second_process_gives_the_same_figures_to_the_last_digit(tmp_path: Path) -> None:
    shown: list[tuple[str, int, int]] = []
    one = asyncio.run(run_simulation(DATA, _options(tmp_path, 1), lambda *_: None))
    two = asyncio.run(run_simulation(DATA, _options(tmp_path, 2), lambda *a: shown.append(a)))
    # As JSON: the first checkpoint has no viewer done yet (NaN, which equals nothing).
    assert json.dumps(_figures(one), sort_keys=True) == json.dumps(_figures(two), sort_keys=True)
    assert one["baselines"]["local_only"]["ndcg@10"] == two["baselines"]["local_only"]["ndcg@10"]
    # …with the constellation and helper in a child process of their own for the second
    assert one["constellation"] == "in this process (ASGI, SQLite)"
    assert two["constellation"] == "a child process (uvicorn on loopback, SQLite)"
    # The second process's checkpoints reached the timeline (without them: the end alone).
    assert len(two["timeline"]) == 3
    local = [(n, total) for label, n, total in shown if label == "local-only"]
    assert local and local[-1][0] == local[-1][1] > 0  # its progress reached this process
    assert ("baseline popularity", 1, 1) in shown


def _world(tmp_path: Path, root: Path, data: Any = DATA) -> tuple[World, np.ndarray[Any, Any]]:
    world = build_world(data, _options(tmp_path, 2), lambda *_: None, {}, root)
    return world, np.zeros(world.split.n_viewers, dtype=np.int64)


def test_an_error_in_the_second_process_is_raised_here(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    world, finished_at = _world(tmp_path, blocker)  # the brains cannot be made under it
    with pytest.raises(ConfigError, match=r"cannot create brain directory .*a-file"):
        asyncio.run(run_beside(world, finished_at, processes=2))
    assert multiprocessing.active_children() == []


def test_a_second_process_killed_fails_the_run_saying_so(tmp_path: Path) -> None:
    longer = synthetic_dataset(titles=80, viewers=40, days=30, seed=3)
    world, finished_at = _world(tmp_path, tmp_path / "work", longer)

    async def kill_it() -> None:
        replay = asyncio.ensure_future(run_beside(world, finished_at, processes=2))
        await _kill_second_process(after=1.0)
        with pytest.raises(OmegaError, match="stopped without a result"):
            await replay

    asyncio.run(kill_it())
    assert multiprocessing.active_children() == []


def test_a_second_process_dying_fails_the_run_before_omegas_fleet_is_done(
    tmp_path: Path,
) -> None:
    """Its death is noticed within a second or so, and the run fails then: Omega's fleet is
    stopped, not replayed to its end first (minutes, on ml-latest-small)."""
    longer = synthetic_dataset(titles=80, viewers=40, days=30, seed=3)
    shown: list[tuple[str, int, int]] = []

    async def kill_it() -> None:
        replay = asyncio.ensure_future(
            run_simulation(longer, _options(tmp_path, 2), lambda *a: shown.append(a))
        )
        await _kill_second_process(after=0.0)
        with pytest.raises(OmegaError, match="stopped without a result"):
            await replay

    asyncio.run(kill_it())
    omega = [(n, total) for label, n, total in shown if label == "omega"]
    # Omega's fleet did not replay to its end (it may not have shown any progress yet).
    assert not omega or omega[-1][0] < omega[-1][1]
    assert multiprocessing.active_children() == []


_KILLED_PARENT = """
import asyncio, sys
from pathlib import Path
import numpy as np
from omega.sim._beside import run_beside
from omega.sim._simulate_fleets import build_world
from omega.sim.fleet import FleetConfig
from omega.sim.simulate import SimulationOptions
from omega.sim.viewers import synthetic_dataset
tmp = Path(sys.argv[1])
fleet = FleetConfig(cells=16, sync_every=3, sync_gap_s=6 * 3600.0, round_every_s=12 * 3600.0)
options = SimulationOptions(
    fleet=fleet, baselines=("popularity",), cache_dir=tmp / "cache", processes=2
)
data = synthetic_dataset(titles=80, viewers=120, days=30, seed=3)
world = build_world(data, options, lambda *_: None, {}, tmp / "work")
asyncio.run(run_beside(world, np.zeros(world.split.n_viewers, dtype=np.int64), processes=2))
"""


def test_the_second_process_ends_with_its_parent_killed(tmp_path: Path) -> None:
    """Its parent killed (SIGKILL: nothing of it runs to stop the child), the second process
    ends too, instead of replaying on alone (then waiting forever to send its result)."""
    psutil = pytest.importorskip("psutil")
    parent = subprocess.Popen([sys.executable, "-c", _KILLED_PARENT, str(tmp_path)])
    try:
        deadline = time.monotonic() + 120
        while not (children := _spawned(psutil, parent.pid)):
            assert parent.poll() is None, "the parent ended by itself"
            assert time.monotonic() < deadline, "the second process never started"
            time.sleep(0.05)
        while not (tmp_path / "work" / "local-only").exists():  # its replay has begun
            assert time.monotonic() < deadline, "the second process never replayed"
            time.sleep(0.05)
        parent.kill()
        parent.wait()
        _, alive = psutil.wait_procs(children, timeout=3)
        for child in alive:
            child.kill()
        assert alive == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def _spawned(psutil: Any, pid: int) -> list[Any]:
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
    return found


async def _kill_second_process(*, after: float) -> None:
    """SIGKILL the second process ``after`` seconds from its start (not the child that
    serves Omega's constellation: ``tests/sim/test_server_process.py`` kills that one)."""
    while not (found := _beside_process()):
        await asyncio.sleep(0.01)
    await asyncio.sleep(after)
    assert found.pid is not None
    os.kill(found.pid, signal.SIGKILL)


def _beside_process() -> multiprocessing.process.BaseProcess | None:
    named = [c for c in multiprocessing.active_children() if c.name == "omega-sim-beside"]
    return named[0] if named else None
