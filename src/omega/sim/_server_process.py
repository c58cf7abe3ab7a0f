"""A simulated fleet's constellation and helper in a child process, on loopback ports.

In the simulator's own process (:meth:`SimConstellation.in_process`) the servers' work —
each sync's handler, the rounds, the helper's sketches — takes turns with the fleet's
brains under one interpreter lock, and a replay uses one core. With ``--processes 2``
they run in a child process instead, as a deployment runs them apart from its TVs: the
same apps under uvicorn, with the settings of :func:`omega.sim.constellation.sim_settings`,
reached over loopback HTTP as a remote ``omega serve`` is. The figures do not change: the
fleet awaits every request, so the servers see them in the same order
(``tests/sim/test_server_process.py``).

The child is started with ``spawn`` (as ``omega.sim._beside``'s second process is), says
where its servers listen — or why they did not start — on a pipe, and serves until the
parent says stop, closes the pipe or ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from omega.errors import ConfigError, OmegaError, TransportError
from omega.sim._processes import (
    deaf_to_ctrl_c,
    exit_with_parent,
    picklable,
    start_deaf_to_ctrl_c,
)
from omega.sim.fleet import FleetConfig
from omega.sync.transport import HttpTransport, Response, Transport

__all__ = ["ServerProcess", "ServerSpec"]

#: Seconds the child may take to import and start both servers.
START_TIMEOUT = 120.0
#: Seconds it may take to stop them before it is killed.
STOP_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """What the child serves: the constellation under ``constellation_dir`` and, when
    ``helper_dir`` is set, a helper there counting its two-server reports with the
    ``fleet``'s settings (as ``omega.sim.servers`` starts them in process)."""

    constellation_dir: Path
    helper_dir: Path | None
    fleet: FleetConfig


@dataclass(frozen=True, slots=True)
class _Ready:
    url: str
    helper_url: str | None
    helper_key: bytes | None


class ServerProcess:
    """The running child: the constellation's ``url``, the helper's ``helper_url`` and
    public key (None without one)."""

    def __init__(
        self, child: multiprocessing.process.BaseProcess, pipe: Connection, ready: _Ready
    ) -> None:
        self._child = child
        self._pipe = pipe
        self.url = ready.url
        self.helper_url = ready.helper_url
        self.helper_key = ready.helper_key

    @classmethod
    async def start(cls, spec: ServerSpec) -> ServerProcess:
        """Start the child and wait until both servers listen (a ``ConfigError`` saying
        why they did not, within :data:`START_TIMEOUT`)."""
        context = multiprocessing.get_context("spawn")
        pipe, theirs = context.Pipe()
        child = context.Process(
            target=_serve, args=(theirs, spec), name="omega-sim-servers", daemon=True
        )
        start_deaf_to_ctrl_c(child)
        theirs.close()
        try:
            ready = await asyncio.get_running_loop().run_in_executor(None, _wait, child, pipe)
        except BaseException:
            _stop(child, pipe)
            raise
        return cls(child, pipe, ready)

    def transport(self) -> Transport:
        """HTTP to the constellation; once the child has ended, a request that got no
        answer fails saying so, not retried (nothing will answer it)."""
        return _ToChild(self.url, self._child)

    def stop(self) -> None:
        _stop(self._child, self._pipe)


class _ToChild(HttpTransport):
    def __init__(self, url: str, child: multiprocessing.process.BaseProcess) -> None:
        super().__init__(url)
        self._child = child

    async def request(
        self, method: str, path: str, *, body: bytes | None, headers: Mapping[str, str]
    ) -> Response:
        try:
            return await super().request(method, path, body=body, headers=headers)
        except TransportError:
            if self._child.is_alive():
                raise
            raise OmegaError(
                f"the simulated servers' process ended (exit code {self._child.exitcode}): "
                "out of memory, or killed"
            ) from None


def _wait(child: multiprocessing.process.BaseProcess, pipe: Connection) -> _Ready:
    deadline = time.monotonic() + START_TIMEOUT
    while not pipe.poll(0.2):
        if not child.is_alive():
            raise OmegaError(
                f"the simulated servers' process ended before they started (exit code "
                f"{child.exitcode})"
            )
        if time.monotonic() > deadline:
            raise ConfigError(
                f"the simulated servers did not start within {START_TIMEOUT:.0f} seconds"
            )
    try:
        answer = pipe.recv()
    except EOFError:
        raise OmegaError("the simulated servers' process ended before they started") from None
    if isinstance(answer, BaseException):
        raise answer
    if not isinstance(answer, _Ready):
        raise OmegaError(f"the simulated servers' process answered {type(answer).__name__}")
    return answer


def _stop(child: multiprocessing.process.BaseProcess, pipe: Connection) -> None:
    with contextlib.suppress(OSError):  # it ended already: a broken pipe
        pipe.send("stop")
    child.join(STOP_TIMEOUT)
    if child.is_alive():
        child.kill()
        child.join()
    pipe.close()


def _serve(pipe: Connection, spec: ServerSpec) -> None:
    """The child: start the helper (if any) and the constellation, say where they
    listen, serve until told to stop (or the pipe or the parent is gone)."""
    from omega.sim.constellation import ServedApp, sim_settings
    from omega.sim.servers import counting_with, start_helper

    deaf_to_ctrl_c()
    threading.Thread(target=exit_with_parent, name="omega-sim-parent", daemon=True).start()
    helper = served = None
    try:
        fleet = spec.fleet
        fields = {}
        if spec.helper_dir is not None:
            helper = start_helper(spec.helper_dir, fleet)
            fields = counting_with(helper, spec.helper_dir, fleet)
        from omega.constellation.app import create_app, ensure_data_dir

        settings = sim_settings(spec.constellation_dir, fsync=fleet.fsync, **fields)
        ensure_data_dir(settings.data_dir)  # its reason here, not uvicorn's log alone
        served = ServedApp(create_app(settings)).start()
        key = helper.service.info().public_key if helper is not None else None
        pipe.send(_Ready(served.url, helper.url if helper is not None else None, key))
        with contextlib.suppress(EOFError):  # the parent closed its end
            pipe.recv()  # "stop"
    except BaseException as exc:  # the parent raises it: nothing may end the child silently
        pipe.send(picklable(exc, "the simulated servers' process"))
    finally:
        if served is not None:
            served.stop()
        if helper is not None:
            helper.stop()
