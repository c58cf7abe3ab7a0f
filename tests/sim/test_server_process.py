"""A simulated fleet's constellation and helper in a child process (``--processes 2``):
both real servers on loopback ports of another process, stopped with the run; servers
that cannot start fail with their reason, and a child that dies mid-replay fails the run
saying so. That the figures equal the in-process servers' is
``tests/sim/test_beside_omega.py``'s."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from pathlib import Path

import httpx
import pytest

from omega.errors import OmegaError
from omega.helper.app import info_of
from omega.sim._server_process import ServerProcess, ServerSpec
from omega.sim.fleet import FleetConfig
from omega.sim.simulate import SimulationOptions, run_simulation
from omega.sim.viewers import synthetic_dataset

FLEET = FleetConfig(
    cells=16, sync_every=3, sync_gap_s=6 * 3600.0, round_every_s=12 * 3600.0, round_min_pushes=2
)


def _children() -> list[multiprocessing.process.BaseProcess]:
    return [c for c in multiprocessing.active_children() if c.name == "omega-sim-servers"]


def test_both_servers_answer_from_another_process_and_stop_with_it(tmp_path: Path) -> None:
    async def serve() -> tuple[int, int, bytes, bytes | None, str]:
        spec = ServerSpec(tmp_path / "constellation", tmp_path / "helper", FLEET)
        servers = await ServerProcess.start(spec)
        try:
            (child,) = _children()
            assert child.pid != os.getpid()
            async with httpx.AsyncClient() as client:
                health = await client.get(servers.url + "/healthz")
                assert servers.helper_url is not None
                info = await client.get(servers.helper_url + "/helper/v1/info")
            return (
                health.status_code,
                info.status_code,
                info.content,
                servers.helper_key,
                (servers.url),
            )
        finally:
            servers.stop()

    health, info, body, key, url = asyncio.run(serve())
    assert (health, info) == (200, 200)
    assert key is not None and info_of(body).public_key == key
    assert _children() == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/healthz", timeout=5.0)


def test_a_constellation_alone_has_no_helper(tmp_path: Path) -> None:
    async def serve() -> tuple[str | None, bytes | None]:
        servers = await ServerProcess.start(ServerSpec(tmp_path / "c", None, FLEET))
        try:
            return servers.helper_url, servers.helper_key
        finally:
            servers.stop()

    assert asyncio.run(serve()) == (None, None)
    assert _children() == []


def test_servers_that_cannot_start_fail_with_their_reason(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    spec = ServerSpec(blocker / "constellation", None, FLEET)
    with pytest.raises(OmegaError, match="a-file"):
        asyncio.run(ServerProcess.start(spec))
    assert _children() == []


def test_a_server_process_killed_mid_replay_fails_the_run_saying_so(tmp_path: Path) -> None:
    data = synthetic_dataset(titles=80, viewers=40, days=30, seed=3)
    options = SimulationOptions(
        fleet=FLEET,
        baselines=("popularity",),
        work_dir=tmp_path / "work",
        cache_dir=tmp_path / "cache",
        processes=2,
    )
    shown: list[str] = []

    async def kill_it() -> None:
        replay = asyncio.ensure_future(
            run_simulation(data, options, lambda label, *_: shown.append(label))
        )
        while "omega" not in shown:  # Omega's fleet is replaying against the child
            assert not replay.done(), replay.exception()
            await asyncio.sleep(0.01)
        (child,) = _children()
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        with pytest.raises(OmegaError, match=r"servers' process ended \(exit code -9\)"):
            await asyncio.wait_for(replay, timeout=120)

    asyncio.run(kill_it())
    assert multiprocessing.active_children() == []
