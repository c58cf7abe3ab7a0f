"""A constellation in a child process, started, waited for and stopped the one way the
benches and the tests do it.

:class:`ServerProcess` runs a server command (``omega serve``, or uvicorn's factory
mode) with its output appended to a log file, and :meth:`~ServerProcess.start` returns
once ``GET /healthz`` answers 200. If the child exits first, or does not answer in time,
it is stopped and :class:`BenchError` carries the log's last lines: a server that failed
to start is never left running. :meth:`~ServerProcess.kill` is a SIGKILL from outside
(as the OOM killer or a power cut); ``start()`` again restarts it on the same command,
port and data::

    with bound_socket() as sock:  # bound here, so no other process takes the port
        server = ServerProcess(
            uvicorn_command(fd=sock.fileno()),
            env={**os.environ, "OMEGA_DATA_DIR": "/tmp/omega"},
            base_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
            log_path=Path("/tmp/omega/server.log"),
            pass_fds=(sock.fileno(),),
        ).start()
    try:
        ...  # talk to server.base_url
    finally:
        server.stop()
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import httpx

from omega.errors import OmegaError

__all__ = [
    "START_TIMEOUT",
    "BenchError",
    "ServerProcess",
    "bound_socket",
    "free_port",
    "uvicorn_command",
]

#: Seconds a server gets to answer /healthz after it was started.
START_TIMEOUT = 60.0


class BenchError(OmegaError):
    """The server or the load generator failed (not a slow result: a broken run)."""


@dataclass(eq=False)
class ServerProcess:
    """``command`` run with ``env`` as a child process, its output appended to
    ``log_path``, serving at ``base_url`` (see the module docstring). ``pass_fds``: file
    descriptors the child inherits (a listening socket for ``uvicorn --fd``)."""

    command: Sequence[str]
    env: Mapping[str, str]
    base_url: str
    log_path: Path
    pass_fds: tuple[int, ...] = ()
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The running (or last) child process."""
        if self._process is None:
            raise BenchError("the server was not started")
        return self._process

    def start(self, *, timeout: float = START_TIMEOUT) -> Self:
        """Start the child and wait until it answers /healthz (see the module docstring)."""
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                list(self.command),
                env=dict(self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=self.pass_fds,
            )
        try:
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Return once /healthz answers 200; BenchError if the child exits or ``timeout``
        seconds pass first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"the server exited at start-up:\n{self.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise BenchError(
            f"the server did not answer /healthz in {timeout:.0f} s:\n{self.log_tail()}"
        )

    def kill(self) -> int:
        """SIGKILL the child from outside and reap it; its exit code (-9)."""
        os.kill(self.process.pid, signal.SIGKILL)
        return self.process.wait(timeout=30)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL if it is still running ``timeout`` seconds later."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def uvicorn_command(
    *, fd: int | None = None, port: int | None = None, workers: int = 1
) -> list[str]:
    """uvicorn serving ``omega.constellation`` (settings from ``OMEGA_*`` in the
    environment) on the inherited socket ``fd``, or on 127.0.0.1:``port``."""
    if (fd is None) == (port is None):
        raise ValueError("uvicorn_command listens on an inherited fd or on a port: give one")
    command = [sys.executable, "-m", "uvicorn", "--factory", "omega.constellation.app:create_app"]
    if fd is not None:
        command += ["--fd", str(fd)]
    else:
        command += ["--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    return [*command, "--log-level", "warning", "--no-access-log"]


def bound_socket(port: int = 0) -> socket.socket:
    """A listening socket on 127.0.0.1:``port`` (0: any free one), to hand to a child
    (``uvicorn --fd``): bound here, so no other process can take the port meanwhile, and
    bindable again at once when a killed server is restarted on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def free_port() -> int:
    """A free port on 127.0.0.1 below Linux's ephemeral range (32768-60999): no client
    connection can be holding it when a server killed on it is started there again."""
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(20_000, 32_000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise BenchError("no free port in 20000-32000 on 127.0.0.1")
