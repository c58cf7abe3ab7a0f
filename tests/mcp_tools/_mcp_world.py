"""A small world for the MCP tests: a catalog of three families of titles (as the tools
take it), a codebook built from those titles' real MiniLM vectors (as an operator would
publish it), live constellations, and the SDK's own clients."""

from __future__ import annotations

import base64
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from omega.bench.serving import ServerProcess, bound_socket, uvicorn_command
from omega.brain.catalog import CatalogItem, item_text
from omega.brain.embedder import shared_embedder

ADMIN_TOKEN = "mcp-test-admin-token-" + "z" * 16
SRC = Path(__file__).resolve().parents[2] / "src"
FAMILIES = {
    "cri": [
        "Heat",
        "The Godfather",
        "Goodfellas",
        "Casino",
        "The Departed",
        "Scarface",
        "Pulp Fiction",
        "Reservoir Dogs",
    ],
    "ani": [
        "Toy Story",
        "Finding Nemo",
        "Monsters, Inc.",
        "The Incredibles",
        "Up",
        "Ratatouille",
        "Inside Out",
        "Coco",
    ],
    "doc": [
        "Planet Earth",
        "Blue Planet",
        "March of the Penguins",
        "Free Solo",
        "Man on Wire",
        "Jiro Dreams of Sushi",
        "Our Planet",
        "Senna",
    ],
}
GENRES = {"cri": ["Crime", "Drama"], "ani": ["Animation", "Children"], "doc": ["Documentary"]}
CODEBOOK_ID = "cb-mcp-test"


def catalog() -> list[dict[str, Any]]:
    """The titles as ``viewer_init`` takes them."""
    return [
        {"item_id": f"{family}{n}", "title": title, "genres": GENRES[family], "runtime_min": 100}
        for family, titles in FAMILIES.items()
        for n, title in enumerate(titles)
    ]


def codebook_document() -> dict[str, Any]:
    """One cell per family, the mean of its titles' MiniLM vectors (as every TV embeds
    them), as ``omega_init`` takes a codebook: each family's titles fall in its cell."""
    entries = catalog()
    items = [
        CatalogItem(item_id=e["item_id"], title=e["title"], genres=e["genres"]) for e in entries
    ]
    vectors = shared_embedder().embed([item_text(i) for i in items])
    families = [e["item_id"][:3] for e in entries]
    centroids = np.stack(
        [
            vectors[[i for i, f in enumerate(families) if f == family]].mean(axis=0)
            for family in FAMILIES
        ]
    )
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    return {
        "codebook_id": CODEBOOK_ID,
        "dim": int(centroids.shape[1]),
        "k": int(centroids.shape[0]),
        "centroids_f16": base64.b64encode(centroids.astype("<f2").tobytes()).decode(),
        "item_ids": [e["item_id"] for e in entries],
    }


def child_env(**extra: str) -> dict[str, str]:
    """This test run's environment for a child process, with Omega's sources first."""
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, **extra}


def start_constellation(data_dir: Path, **env: str) -> ServerProcess:
    """``omega.constellation`` under uvicorn on a loopback socket bound here."""
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "OMEGA_DATA_DIR": str(data_dir),
        "OMEGA_ADMIN_TOKEN": ADMIN_TOKEN,
        "OMEGA_FEDERATION_INTERVAL": "0",
        "OMEGA_RELEASE_POLL_INTERVAL": "0.2",
        "OMEGA_REGISTRATION_RATE_LIMIT": "0",
        **env,
    }
    with bound_socket() as sock:
        return ServerProcess(
            uvicorn_command(fd=sock.fileno()),
            env=child_env(**settings),
            base_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
            log_path=data_dir / "server.log",
            pass_fds=(sock.fileno(),),
        ).start()


def viewer_command(brain: Path, *options: str) -> StdioServerParameters:
    """``omega mcp viewer --brain BRAIN …`` as an assistant launches it."""
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "omega.cli", "mcp", "viewer", "--brain", str(brain), *options],
        env=child_env(),
    )


@asynccontextmanager
async def http_client(url: str, token: str | None = ADMIN_TOKEN) -> AsyncIterator[Client]:
    """The SDK's client over streamable HTTP, with the admin bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


def structured(result: CallToolResult) -> dict[str, Any]:
    """A successful call's structured content (the test fails with the error text)."""
    assert not result.is_error, _text(result)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    """A failed call's one sentence."""
    assert result.is_error, result.structured_content
    return _text(result)


def _text(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)
