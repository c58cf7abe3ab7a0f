"""``omega bench mcp``: what the MCP viewer tools add to a recommendation.

A brain is built as ``omega bench brain`` builds one (synthetic titles with clustered
vectors, a household's history), closed, and served by a real ``omega mcp viewer``
process that the SDK's own client launches on stdio. Each ``viewer_get_recommendations``
call (k=10) is timed in this process, from the request to the parsed result; the
server's answer carries ``brain_ms``, the brain's own ``recommend`` time for that very
call, measured around it in the server. Their difference per call is what the tool
costs: JSON-RPC over the pipes, argument checks, a worker-thread hop, the pydantic
result and its structured content.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from omega.bench.brain import _Household, _import_catalog
from omega.bench.serving import BenchError
from omega.brain import Brain, BrainConfig
from omega.clock import ManualClock

__all__ = ["run_mcp_bench"]

#: Calls made before timing starts (imports, caches, the first index searches).
WARMUP = 20


def run_mcp_bench(
    *,
    catalog: int = 10_000,
    events: int = 500,
    calls: int = 1_000,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, object]:
    """Build a brain, serve it with ``omega mcp viewer`` on stdio, time ``calls`` calls."""
    say = progress or (lambda _: None)
    with tempfile.TemporaryDirectory(prefix="omega-bench-mcp-") as tmp:
        tv = Path(tmp) / "tv"
        say(f"a brain of {catalog} titles and {events} events")
        _build_brain(tv, catalog=catalog, events=events, seed=seed)
        say(f"omega mcp viewer on stdio: {calls} calls of viewer_get_recommendations")
        figures = asyncio.run(_measure(tv, calls))
    return {"catalog_size": catalog, "events": events, **figures}


def _build_brain(directory: Path, *, catalog: int, events: int, seed: int) -> None:
    clock = ManualClock(1_700_000_000.0)
    with Brain.open(directory, clock=clock, config=BrainConfig()) as brain:
        imported = _import_catalog(brain, None, catalog=catalog, mode="clustered", seed=seed)
        household = _Household(brain, clock, np.random.default_rng(seed), imported.ids)
        for _ in range(events):
            household.event()


async def _measure(directory: Path, calls: int) -> dict[str, object]:
    command = StdioServerParameters(
        command=sys.executable,
        args=["-m", "omega.cli", "mcp", "viewer", "--brain", str(directory)],
        env=dict(os.environ),  # this process's own (the SDK's default passes a few names)
    )
    start = time.perf_counter()
    log = directory.parent / "mcp-viewer.log"  # the server's stderr
    with log.open("w", encoding="utf-8") as errlog:
        return await _timed_calls(Client(stdio_client(command, errlog=errlog)), calls, start)


async def _timed_calls(connect: Client, calls: int, start: float) -> dict[str, object]:
    async with connect as client:
        await client.list_tools()
        started = time.perf_counter() - start
        for _ in range(WARMUP):
            await _call(client)
        tool_ms, brain_ms = [], []
        for _ in range(calls):
            began = time.perf_counter()
            answer = await _call(client)
            tool_ms.append((time.perf_counter() - began) * 1000.0)
            brain_ms.append(float(answer["brain_ms"]))
    overhead = [t - b for t, b in zip(tool_ms, brain_ms, strict=True)]
    return {
        "transport": "stdio",
        "calls": calls,
        "server_start_s": round(started, 3),
        **_percentiles("tool", tool_ms),
        **_percentiles("brain", brain_ms),
        **_percentiles("overhead", overhead),
    }


async def _call(client: Client) -> dict[str, Any]:
    result = await client.call_tool("viewer_get_recommendations", {"k": 10})
    content = result.structured_content
    if result.is_error or not isinstance(content, dict) or len(content["items"]) != 10:
        raise BenchError(f"viewer_get_recommendations failed: {result.content}")
    return content


def _percentiles(name: str, ms: list[float]) -> dict[str, float]:
    return {
        f"{name}_p50_ms": round(statistics.median(ms), 3),
        f"{name}_p99_ms": round(float(np.percentile(np.array(ms), 99)), 3),
    }
