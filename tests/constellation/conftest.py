"""Constellation servers for the tests: real uvicorn child processes on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _constellation_harness import ServerProcess, start_server

from _databases import fresh_database


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
