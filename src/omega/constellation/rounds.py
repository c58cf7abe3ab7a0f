"""Federation rounds run by the server (the embedded default).

``omega serve`` runs a round every ``federation_interval`` seconds, so a single-box
install needs no separate ``omega worker``; with PostgreSQL and real workers, set the
interval to 0. Storage leasing makes both safe to run at once.

Scheduled rounds run in a child process (a fresh ``python`` per round, killed if the
server stops meanwhile) on their own storage connection: a round decodes and clusters
every live pattern, seconds of Python that on a thread would hold the server's GIL and
stall every sync meanwhile (``omega bench server`` saw p95 go from ~15 ms to 3 s while
one ran). With SQLite its heavy writes (folding the queue into the live set) go to the
live set's own file (``omega.storage._sqlite_live``), so the server's writes only wait
for the short deletes of folded rows from the queue, paced by ``CHILD_APPLY_BATCH``.
Rounds asked for by an admin (``POST /api/omega/rounds``) run on a worker thread of the
server, as tests and the simulator want them: at once and in step with their clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anyio import to_thread

from omega.clock import Clock
from omega.constellation.events import ReleaseWatcher
from omega.constellation.metrics import Metrics
from omega.errors import ConfigError
from omega.storage.base import Storage

if TYPE_CHECKING:
    from omega.federation.shared import SharedCounting

__all__ = ["RoundRunner"]

log = logging.getLogger("omega.constellation")

#: How a child-process round shares the box with the server: contributions applied per
#: transaction and the pause after each (~40 ms of work, then 80 ms left to the server:
#: the minute's ~600,000 rows at 500 syncs/s take ~15 s instead of bursting a core), LDP
#: reports folded per transaction (in the main file, whose lock pushes need), and a lower
#: CPU priority for the round's own thread (its storage writer threads keep the server's,
#: so the main file's lock is never held by a descheduled thread). With batches of 500
#: and 10 ms pauses, one ``omega bench server`` run failed at 500 syncs/s while the round
#: ran (p95 121 ms); with these, four runs in five held 500 or 600 across it.
CHILD_APPLY_BATCH = 5000
CHILD_APPLY_PAUSE_S = 0.08
CHILD_REPORT_BATCH = 500
CHILD_NICE = 10

_CHILD = "from omega.constellation.rounds import child_main; child_main()"


def child_main() -> None:
    """A scheduled round in a child process: the job (storage URL, time, worker id) comes
    as JSON on stdin (so a database password never shows in a process list), the result
    goes to stdout as one JSON line."""
    from omega.federation import FederationConfig, run_round
    from omega.storage.factory import open_storage

    job = json.loads(sys.stdin.read())
    storage = open_storage(job["storage_url"])  # its writer threads start here, un-niced
    if hasattr(os, "nice"):  # Linux: per thread, so this one only
        os.nice(CHILD_NICE)
    try:
        config = FederationConfig(
            apply_batch=CHILD_APPLY_BATCH,
            apply_pause_s=CHILD_APPLY_PAUSE_S,
            report_batch=CHILD_REPORT_BATCH,
        )
        shares = shared_counting(*job["helper"]) if job.get("helper") else None
        result = run_round(
            storage, config, now=job["now"], worker_id=job["worker_id"], shares=shares
        )
        if shares is not None:
            shares.close()
    finally:
        storage.close()
    sys.stdout.write(json.dumps(_plain(result)) + "\n")


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
        helper_url: str | None = None,
        helper_secret_file: Path | None = None,
        share_min_batch: int = 500,
        share_noise_epsilon: float = 4.0,
        share_noise_seed: int | None = None,
    ) -> None:
        """``storage_url``: where a child process finds the same storage for scheduled
        rounds; None runs them on a worker thread too. ``helper_url`` and its secret:
        the helper two-server reports are counted with (None: they are not)."""
        self._helper = (
            helper_url,
            str(helper_secret_file) if helper_secret_file else None,
            share_min_batch,
            share_noise_epsilon,
            share_noise_seed,
        )
        self._shares: SharedCounting | None = None
        self._storage = storage
        self._storage_url = storage_url
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

        if self._shares is None:
            self._shares = shared_counting(*self._helper)
        async with self._lock:  # one in-process round at a time
            result = await to_thread.run_sync(
                lambda: run_round(
                    self._storage,
                    FederationConfig(),
                    now=self._clock.now(),
                    worker_id=self._worker_id,
                    shares=self._shares,
                )
            )
        self._metrics.rounds.inc()
        version = await self._watcher.check()
        return {"version": version, "result": _plain(result)}

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
            "helper": list(self._helper),
        }
        async with self._lock:
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _CHILD,
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
                raise RuntimeError(
                    f"the round's child process exited {child.returncode}: " + " | ".join(tail)
                )
            result = json.loads(out.decode().strip().splitlines()[-1])
        self._metrics.rounds.inc()
        version = await self._watcher.check()
        return {"version": version, "result": result}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.run_scheduled()
            except Exception:  # the next round may succeed; the server must keep serving
                log.exception("scheduled federation round failed")


def shared_counting(
    url: str | None,
    secret_file: str | Path | None,
    min_batch: int = 500,
    noise_epsilon: float = 4.0,
    noise_seed: int | None = None,
) -> SharedCounting | None:
    """The helper connection for two-server reports, or None when none is configured."""
    if not url:
        return None
    if not secret_file:
        raise ConfigError("a helper URL needs the helper secret file (helper_secret_file)")
    from omega.federation.shared import HttpHelper, SharedCounting
    from omega.helper.service import auth_token, load_secret

    secret = load_secret(Path(secret_file), create=False)
    return SharedCounting(
        helper=HttpHelper(url, auth_token(secret)),
        secret=secret,
        batch=max(2 * min_batch, 1000),
        min_batch=min_batch,
        noise_epsilon=noise_epsilon,
        noise_seed=noise_seed,
    )


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
