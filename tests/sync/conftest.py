"""Fixtures for the sync tests: real constellations on loopback (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _sync_world import Server, start_server

from _databases import fresh_database


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A SQLite-backed constellation for one module, with the test codebook published."""
    process = start_server(tmp_path_factory.mktemp("constellation"))
    process.publish_codebook()
    yield process
    process.stop()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def any_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A constellation per backend: the end-to-end sync runs against both stores."""
    data_dir: Path = tmp_path_factory.mktemp(f"constellation-{request.param}")
    if request.param == "sqlite":
        process = start_server(data_dir)
        process.publish_codebook()
        yield process
        process.stop()
        return
    with fresh_database(request.getfixturevalue("postgres_url")) as db_url:
        process = start_server(data_dir, db_url=db_url)
        process.publish_codebook()
        yield process
        process.stop()
