"""Constellation servers for the tests: real uvicorn child processes on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from _constellation_harness import ServerProcess, start_server

from _databases import fresh_database
from omega.bench.serving import free_port


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One SQLite-backed server for the session, with the default limits (60/min)."""
    process = start_server(
        tmp_path_factory.mktemp("constellation"), OMEGA_MAX_PATTERNS_PER_BATCH="100"
    )
    yield process
    process.stop()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        yield c


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def sync_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A fresh server per module and backend: the sync suite runs against both stores."""
    data_dir: Path = tmp_path_factory.mktemp(f"constellation-{request.param}")
    if request.param == "sqlite":
        process = start_server(data_dir, OMEGA_MAX_PATTERNS_PER_BATCH="100")
        yield process
        process.stop()
        return
    with fresh_database(request.getfixturevalue("postgres_url")) as db_url:
        process = start_server(data_dir, db_url=db_url, OMEGA_MAX_PATTERNS_PER_BATCH="100")
        yield process
        process.stop()


@pytest.fixture
def sync_client(sync_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sync_server.base_url, timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis server for the session (Debian's redis-server; .ci/run installs it), on a
    free loopback port, keeping nothing on disk."""
    server = shutil.which("redis-server")
    assert server is not None, "redis-server is not installed (apt-get install redis-server)"
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    command = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(folder)]
    with (folder / "redis.log").open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert process.poll() is None, (folder / "redis.log").read_text()
                assert time.monotonic() < deadline, "redis-server did not answer in 20 s"
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
