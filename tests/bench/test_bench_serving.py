"""``omega.bench.serving``: a server child process is waited for, and never left running
when it fails to come up; a real `omega serve`-style uvicorn answers, is SIGKILLed from
outside and starts again on the same socket address."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from omega.bench.serving import BenchError, ServerProcess, bound_socket, free_port, uvicorn_command


def test_a_server_that_never_answers_is_stopped_not_orphaned(tmp_path: Path) -> None:
    silent = ServerProcess(
        [sys.executable, "-c", "import time; print('booting', flush=True); time.sleep(600)"],
        env=dict(os.environ),
        base_url=f"http://127.0.0.1:{free_port()}",
        log_path=tmp_path / "server.log",
    )
    with pytest.raises(BenchError, match=r"did not answer /healthz in 1 s:\nbooting"):
        silent.start(timeout=1.0)
    assert silent.process.poll() is not None  # stopped and reaped


def test_a_server_that_exits_at_start_up_says_why(tmp_path: Path) -> None:
    broken = ServerProcess(
        [sys.executable, "-c", "raise SystemExit('no such database')"],
        env=dict(os.environ),
        base_url=f"http://127.0.0.1:{free_port()}",
        log_path=tmp_path / "server.log",
    )
    with pytest.raises(BenchError, match="exited at start-up:\nno such database"):
        broken.start()


def test_a_constellation_starts_is_killed_and_starts_again(tmp_path: Path) -> None:
    env = {**os.environ, "OMEGA_DATA_DIR": str(tmp_path / "data"), "OMEGA_FEDERATION_INTERVAL": "0"}
    port = free_port()
    server = ServerProcess(
        uvicorn_command(port=port),
        env=env,
        base_url=f"http://127.0.0.1:{port}",
        log_path=tmp_path / "server.log",
    )
    try:
        server.start()
        assert httpx.get(server.base_url + "/healthz").status_code == 200
        assert server.kill() == -signal.SIGKILL
        server.start()  # the same command, port and data
        assert httpx.get(server.base_url + "/healthz").status_code == 200
    finally:
        server.stop()
    assert server.process.poll() is not None


def test_a_bound_socket_is_listening_and_the_commands_listen_on_one_thing() -> None:
    with bound_socket() as sock:
        assert sock.getsockname()[1] > 0
        assert uvicorn_command(fd=sock.fileno())[-5:-3] == ["--fd", str(sock.fileno())]
    with pytest.raises(ValueError, match="give one"):
        uvicorn_command()
