"""Federation rounds run by the server (the embedded default).

``omega serve`` runs a round every ``federation_interval`` seconds, so a single-box
install needs no separate ``omega worker``; with PostgreSQL and real workers, set the
interval to 0. Storage leasing makes both safe to run at once.

Scheduled rounds run in a child process (a fresh ``python`` per round, killed if the
server stops meanwhile) on their own storage connection: a round decodes and clusters
every live pattern, seconds of Python that on a thread would hold the server's GIL and
stall every sync meanwhile (``omega bench server`` saw p95 go from ~15 ms to 3 s while
one ran). With SQLite its heavy writes (folding the queue into the live set) go to the
live set's own file (see ``omega.storage``), so the server's writes only wait for the
short deletes of folded rows from the queue, paced in small batches. The child is
``python -m omega.constellation._round_child`` (its docstring has the pacing).

Rounds asked for by an admin (``POST /api/omega/rounds``) run on a worker thread of the
server, as tests and the simulator want them: at once and in step with their clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from anyio import to_thread

from omega.clock import Clock
from omega.constellation.events import ReleaseWatcher
from omega.constellation.helper_client import HelperSettings, connect_cowatch, connect_helper
from omega.constellation.metrics import Metrics
from omega.errors import OmegaError
from omega.storage.base import Storage

if TYPE_CHECKING:
    from omega.federation import FederationConfig
    from omega.federation.shared import SharedCounting

__all__ = ["RoundChildError", "RoundRunner", "plain"]

log = logging.getLogger("omega.constellation")
#: The scheduled round's child process: ``python -m`` this module.
ROUND_CHILD = "omega.constellation._round_child"


class RoundChildError(OmegaError):
    """A scheduled round's child process failed (its last stderr lines say why)."""


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
        helper: HelperSettings | None = None,
    ) -> None:
        """``storage_url``: where a child process finds the same storage for scheduled
        rounds; None runs them on a worker thread too. ``helper``: the helper two-server
        reports are counted with (None, or no URL: they are not)."""
        self._helper = helper or HelperSettings()
        self._shares: SharedCounting | None = None
        self._storage = storage
        self._storage_url = storage_url
        self._clock = clock
        self._metrics = metrics
        self._watcher = watcher
        self._interval = interval
        self._worker_id = f"constellation-{socket.gethostname()}"
        self._lock = asyncio.Lock()
        self._observers: list[Callable[[dict[str, Any]], None]] = []

    def observe(self, observer: Callable[[dict[str, Any]], None]) -> None:
        """Call ``observer`` with each round's outcome (what ``run_once`` returns) as it
        ends, scheduled or asked for (the dashboard's round history)."""
        self._observers.append(observer)

    def _told(self, outcome: dict[str, Any]) -> dict[str, Any]:
        for observer in self._observers:
            observer(outcome)
        return outcome

    async def run_once(self) -> dict[str, Any]:
        """One round; returns what it reported plus the release version after it."""
        # Imported on first use: federation pulls in scipy, which a serving-only process
        # (federation_interval=0, rounds in `omega worker`) never needs.
        from omega.federation import run_round

        config = self.federation_config()
        if self._shares is None:
            self._shares = connect_helper(self._helper)
        async with self._lock, self._timed() as outcome:  # one in-process round at a time
            result = await to_thread.run_sync(
                lambda: run_round(
                    self._storage,
                    config,
                    now=self._clock.now(),
                    worker_id=self._worker_id,
                    shares=self._shares,
                    cowatch=connect_cowatch(self._helper, self._shares),
                )
            )
            outcome.append(result.status)
        version = await self._watcher.check()
        return self._told({"version": version, "result": self._checked(plain(result))})

    def _checked(self, result: Any) -> Any:
        """``result``, its co-watch step's storage error (if any) logged here — a child
        process's log is not kept — and counted (``omega_cowatch_failures``)."""
        error = result.get("cowatch_error") if isinstance(result, dict) else None
        if error:
            log.warning("a round's co-watch step failed: %s; the next round retries it", error)
            self._metrics.cowatch_failures.inc()
        return result

    def federation_config(self) -> FederationConfig:
        """The settings this server's rounds decide with (the admin's consensus and prune
        routes read the same)."""
        from omega.federation import FederationConfig

        return FederationConfig()

    def close(self) -> None:
        """Close the helper connection, if a round opened one."""
        if self._shares is not None:
            self._shares.close()
            self._shares = None

    async def run_scheduled(self) -> dict[str, Any]:
        """One scheduled round: in the child process when there is a storage URL."""
        if self._storage_url is None:
            return await self.run_once()
        job = {
            "storage_url": self._storage_url,
            "now": self._clock.now(),
            "worker_id": self._worker_id,
            "helper": _helper_job(self._helper),
        }
        async with self._lock, self._timed() as outcome:
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                ROUND_CHILD,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                out, err = await child.communicate(json.dumps(job).encode())
            except BaseException:  # cancelled (the server is stopping): stop the round too
                if child.returncode is None:
                    child.kill()
                    await child.wait()
                raise
            if child.returncode != 0:
                tail = err.decode(errors="replace").strip().splitlines()[-5:]
                raise RoundChildError(
                    f"the round's child process exited {child.returncode}: " + " | ".join(tail)
                )
            result = json.loads(out.decode().strip().splitlines()[-1])
            outcome.append(str(result.get("status", "unknown")))
        version = await self._watcher.check()
        return self._told({"version": version, "result": self._checked(result)})

    @contextlib.asynccontextmanager
    async def _timed(self) -> AsyncIterator[list[str]]:
        """Time a round for the metrics; the caller appends its status (none: it failed,
        unless it was cancelled, which is no round at all)."""
        outcome: list[str] = []
        started = time.perf_counter()
        try:
            yield outcome
        except asyncio.CancelledError:
            raise
        except BaseException:
            self._metrics.round_finished("failed", time.perf_counter() - started)
            raise
        self._metrics.round_finished(outcome[-1], time.perf_counter() - started)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.run_scheduled()
            except Exception:  # the next round may succeed; the server must keep serving
                log.exception("scheduled federation round failed")


def _helper_job(helper: HelperSettings) -> dict[str, Any]:
    """``helper`` as JSON for the child (which rebuilds it with ``HelperSettings(**job)``)."""
    job = dataclasses.asdict(helper)
    job["secret_file"] = str(helper.secret_file) if helper.secret_file else None
    return job


def plain(result: object) -> object:
    """A round result as JSON-friendly data (dataclass, mapping or scalar)."""
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return {k: plain(v) for k, v in dataclasses.asdict(result).items()}
    if isinstance(result, dict):
        return {str(k): plain(v) for k, v in result.items()}
    if isinstance(result, (list, tuple)):
        return [plain(v) for v in result]
    if result is None or isinstance(result, (str, int, float, bool)):
        return result
    return repr(result)
