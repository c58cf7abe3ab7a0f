"""Federation rounds inside the server process (the embedded default).

``omega serve`` runs a round every ``federation_interval`` seconds on a worker thread,
so a single-box install needs no separate ``omega worker``; with PostgreSQL and real
workers, set the interval to 0. Storage leasing makes both safe to run at once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from anyio import to_thread

from omega.clock import Clock
from omega.constellation.events import ReleaseWatcher
from omega.constellation.metrics import Metrics
from omega.storage.base import Storage

__all__ = ["RoundRunner"]

log = logging.getLogger("omega.constellation")


class RoundRunner:
    """Runs ``omega.federation.run_round`` now (``run_once``) or on a schedule (``run``)."""

    def __init__(
        self,
        storage: Storage,
        *,
        clock: Clock,
        metrics: Metrics,
        watcher: ReleaseWatcher,
        interval: float,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._metrics = metrics
        self._watcher = watcher
        self._interval = interval
        self._worker_id = f"constellation-{socket.gethostname()}"
        self._lock = asyncio.Lock()

    async def run_once(self) -> dict[str, Any]:
        """One round; returns what it reported plus the release version after it."""
        # Imported on first use: federation pulls in scipy, which a serving-only process
        # (federation_interval=0, rounds in `omega worker`) never needs.
        from omega.federation import FederationConfig, run_round

        async with self._lock:  # one in-process round at a time
            result = await to_thread.run_sync(
                lambda: run_round(
                    self._storage,
                    FederationConfig(),
                    now=self._clock.now(),
                    worker_id=self._worker_id,
                )
            )
        self._metrics.rounds.inc()
        version = await self._watcher.check()
        return {"version": version, "result": _plain(result)}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.run_once()
            except Exception:  # the next round may succeed; the server must keep serving
                log.exception("in-process federation round failed")


def _plain(result: object) -> object:
    """A round result as JSON-friendly data (dataclass, mapping or scalar)."""
    import dataclasses

    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(result).items()}
    if isinstance(result, dict):
        return {str(k): _plain(v) for k, v in result.items()}
    if isinstance(result, (list, tuple)):
        return [_plain(v) for v in result]
    if result is None or isinstance(result, (str, int, float, bool)):
        return result
    return repr(result)
