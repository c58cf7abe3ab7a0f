"""Fixtures for the MCP tests: live constellations on loopback, and the codebook their
operator publishes (built once from the catalog's real MiniLM vectors)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _mcp_world import codebook_document, start_constellation

from omega.bench.serving import ServerProcess


@pytest.fixture(scope="session")
def codebook() -> dict[str, Any]:
    return codebook_document()


@pytest.fixture(scope="module")
def constellation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A fresh ``omega serve`` (uvicorn, SQLite) per module, attested TVs only."""
    process = start_constellation(tmp_path_factory.mktemp("constellation"))
    yield process
    process.stop()
