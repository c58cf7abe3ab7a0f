"""Federation rounds run by the server (the embedded default).

``omega serve`` runs a round every ``federation_interval`` seconds, so a single-box
install needs no separate ``omega worker``; with PostgreSQL and real workers, set the
interval to 0. Storage leasing makes both safe to run at once.

Scheduled rounds run in a child process (one, kept between rounds) on their own storage
connection: a round decodes and clusters every live pattern, seconds of Python that on
a thread would hold the server's GIL and stall every sync meanwhile (``omega bench
server`` saw p95 go from ~15 ms to 3 s while one ran). Its writes go in small
transactions (``CHILD_APPLY_BATCH``) so a sync never waits long for the write lock.
Rounds asked for by an admin (``POST /api/omega/rounds``) run on a worker thread of the
server, as tests and the simulator want them: at once and in step with their clock.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import socket
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from anyio import to_thread

from omega.clock import Clock
from omega.constellation.events import ReleaseWatcher
from omega.constellation.metrics import Metrics
from omega.storage.base import Storage

__all__ = ["RoundRunner"]

log = logging.getLogger("omega.constellation")

#: Pending contributions (and LDP reports) a child-process round applies per write
#: transaction, and the pause after each, which lets the server's writer take the
#: SQLite lock in between.
CHILD_APPLY_BATCH = 500
CHILD_APPLY_PAUSE_S = 0.01

_CHILD_STORAGE: dict[str, Any] = {}


def _round_in_child(storage_url: str, now: float, worker_id: str) -> object:
    """One round in the child process, on its own (cached) storage connection."""
    from omega.federation import FederationConfig, run_round
    from omega.storage.factory import open_storage

    storage = _CHILD_STORAGE.get(storage_url)
    if storage is None:
        storage = _CHILD_STORAGE[storage_url] = open_storage(storage_url)
    config = FederationConfig(
        apply_batch=CHILD_APPLY_BATCH,
        apply_pause_s=CHILD_APPLY_PAUSE_S,
        report_batch=CHILD_APPLY_BATCH,
    )
    return _plain(run_round(storage, config, now=now, worker_id=worker_id))


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
        storage_url: str | None = None,
    ) -> None:
        """``storage_url``: where a child process finds the same storage for scheduled
        rounds; None runs them on a worker thread too."""
        self._storage = storage
        self._storage_url = storage_url
        self._pool: ProcessPoolExecutor | None = None
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

    async def run_scheduled(self) -> dict[str, Any]:
        """One scheduled round: in the child process when there is a storage URL."""
        if self._storage_url is None:
            return await self.run_once()
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn")
            )
        loop = asyncio.get_running_loop()
        async with self._lock:
            result = await loop.run_in_executor(
                self._pool, _round_in_child, self._storage_url, self._clock.now(), self._worker_id
            )
        self._metrics.rounds.inc()
        version = await self._watcher.check()
        return {"version": version, "result": result}

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._interval)
                try:
                    await self.run_scheduled()
                except Exception:  # the next round may succeed; the server must keep serving
                    log.exception("scheduled federation round failed")
                    self._close_pool()  # a broken child is replaced at the next round
        finally:
            self._close_pool()

    def _close_pool(self) -> None:
        if self._pool is not None:
            # A round still running in the child finishes there (its commit is atomic).
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


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
