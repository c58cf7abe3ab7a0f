"""What ``GET /metrics`` reads from the running server just before it renders.

Gauges of state (devices, patterns, storage connections, the helper's health) are read
here, once per scrape, rather than kept up to date by every request: a sync pays for
none of them. A scrape still answers when storage or the helper does not: the failure
is a gauge (``omega_storage_up``, ``omega_helper_up``) an alert can watch, not a 500.
"""

from __future__ import annotations

import logging

import httpx
from anyio import to_thread

from omega.constellation._runtime import Runtime
from omega.constellation.metrics import Metrics
from omega.errors import StoreError

__all__ = ["HELPER_PROBE_TIMEOUT", "refresh"]

log = logging.getLogger("omega.constellation")

#: Seconds a scrape waits for the helper's ``/healthz`` (Prometheus' own scrape timeout
#: is 10 s by default).
HELPER_PROBE_TIMEOUT = 2.0


async def refresh(runtime: Runtime) -> None:
    """Bring the scrape-time gauges of ``runtime.metrics`` up to date."""
    metrics = runtime.metrics
    metrics.release_version.set(runtime.broker.version)
    metrics.sse_clients.set(runtime.broker.subscribers)
    metrics.active_devices.set(runtime.limiter.active())
    await _storage(runtime, metrics)
    if metrics.helper_up is not None and runtime.settings.helper_url:
        up = await _helper_answers(runtime.settings.helper_url)
        metrics.helper_up.set(1 if up else 0)
        if not up:
            metrics.helper_probe_failures.inc()


async def _storage(runtime: Runtime, metrics: Metrics) -> None:
    """The registry's counts (one query) and the connections' state (from memory)."""
    try:
        stats = await runtime.db(runtime.storage.stats)
    except StoreError as exc:
        log.warning("metrics: storage did not answer: %s", exc)
        metrics.storage_up.set(0)
    else:
        metrics.storage_up.set(1)
        metrics.registered_devices.set(stats.viewers)
        metrics.live_patterns.set(stats.live_patterns)
        metrics.released_patterns.set(stats.released_patterns)
        metrics.pending_contributions.set(stats.pending_contributions)
    load = runtime.storage.load()
    # Storage calls run on the worker threads, each holding at most one connection.
    metrics.db_pool_size.set(to_thread.current_default_thread_limiter().total_tokens)
    metrics.db_pool_connections.set(load.connections)
    metrics.db_pool_in_use.set(load.in_use)
    metrics.db_write_queue.set(load.write_queue)


async def _helper_answers(url: str) -> bool:
    """Whether the helper's ``/healthz`` answers 200 within the probe timeout."""
    try:
        async with httpx.AsyncClient(timeout=HELPER_PROBE_TIMEOUT) as client:
            answer = await client.get(url.rstrip("/") + "/healthz")
    except httpx.HTTPError as exc:
        log.warning("metrics: helper at %s unreachable: %s", url, exc)
        return False
    return answer.status_code == 200
