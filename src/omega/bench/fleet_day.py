"""``omega simulate --engine … --tvs N``: a synthetic fleet's day against a real server.

Starts ``omega serve`` (SQLite under a temporary data directory) on loopback, trusts a
manufacturer and publishes the fleet's codebook through the admin API, then runs
:func:`omega.sim.engine_fleet.run_fleet_days` on the engine — batches of TVs per task,
a round after each step — and reports wall time, memory (this process, the largest
engine worker, the server), syncs and bytes. Everything it started is stopped on the way
out, the cluster included.
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from omega.bench.server import post_codebook, server_command, trust_manufacturer
from omega.bench.serving import BenchError, ServerProcess, free_port
from omega.constellation import Settings, load_admin_token, load_keys
from omega.federation.engines import DaskEngine, Engine, SerialEngine
from omega.protocol.attestation import Manufacturer
from omega.sim.content import shared_catalog
from omega.sim.engine_fleet import run_fleet_days
from omega.sim.viewers import synthetic_dataset

__all__ = ["run_fleet_day"]


def run_fleet_day(
    *,
    tvs: int,
    days: int = 1,
    engine: str = "dask",
    address: str | None = None,
    workers: int = 2,
    batch: int = 500,
    steps_per_day: int = 4,
    titles: int = 1500,
    cells: int = 256,
    seed: int = 0,
    cache_dir: Path | None = None,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Run ``tvs`` synthetic TVs for ``days`` simulated days on ``engine`` (local: batches
    one after another in this process; dask: on a Dask cluster) and report the figures.
    The brains live under ``work_dir`` (default: the temporary directory; a tmpfs such as
    /dev/shm spares their fsyncs), which every engine worker must see."""
    started = time.perf_counter()
    dataset = synthetic_dataset(titles=titles, viewers=tvs, days=days, seed=seed)
    shared = shared_catalog(dataset, cells=cells, cache_dir=cache_dir, seed=seed)
    prepare_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="omega-fleet-day-", dir=work_dir) as tmp:
        root = Path(tmp)
        server, token = _start_server(root / "constellation")
        cluster: Engine | None = None
        try:
            maker = Manufacturer.generate("omega-sim", "fleet-day")
            trust_manufacturer(server.base_url, token, maker)
            post_codebook(
                server.base_url,
                token,
                {
                    "codebook_id": shared.codebook_id,
                    "dim": int(shared.centroids.shape[1]),
                    "k": int(shared.centroids.shape[0]),
                    "centroids_f16": shared.centroids.astype("<f2").tobytes(),
                    "item_ids": list(shared.catalog.ids),
                },
            )
            engine_started = time.perf_counter()
            cluster = (
                DaskEngine(address=address, workers=workers)
                if engine == "dask"
                else SerialEngine(workers)
            )
            engine_start_s = time.perf_counter() - engine_started
            replay_started = time.perf_counter()
            day = run_fleet_days(
                cluster,
                dataset,
                shared,
                server=server.base_url,
                maker=maker,
                work_dir=root / "brains",
                run_round=lambda: _round(server.base_url, token),
                batch=batch,
                steps_per_day=steps_per_day,
                seed=seed,
            )
            replay_s = time.perf_counter() - replay_started
            server_rss = _rss_mb(server.process.pid)
            workers_used = cluster.workers
        finally:
            if cluster is not None:
                cluster.close()
            server.stop()
        brains_mb = _size_mb(root / "brains")
    totals = day.totals
    return {
        "tvs": tvs,
        "days": days,
        "engine": engine,
        "engine_workers": workers_used,
        "batch": batch,
        "tasks_per_step": day.batches_per_step,
        "events": totals.events,
        "syncs": totals.syncs,
        "pushes": totals.pushes,
        "sync_errors": totals.sync_errors,
        "first_sync_error": totals.first_error or None,
        "push_bytes": totals.push_bytes,
        "pull_bytes": totals.pull_bytes,
        "wall_s": round(time.perf_counter() - started, 1),
        "prepare_s": round(prepare_s, 1),
        "engine_start_s": round(engine_start_s, 2),
        "replay_s": round(replay_s, 1),
        "tvs_per_s": round(totals.tvs / replay_s, 1) if replay_s > 0 else None,
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "worker_peak_rss_mb": totals.peak_rss_mb,
        "server_rss_mb": round(server_rss),
        "brains_on_disk_mb": brains_mb,
        "steps": day.steps,
    }


def _start_server(data_dir: Path) -> tuple[ServerProcess, str]:
    """``omega serve`` on loopback with rounds left to the driver; its admin token."""
    data_dir.mkdir(parents=True)
    settings = Settings(data_dir=data_dir)
    load_keys(settings)
    token = load_admin_token(settings)
    command, env = server_command(
        port=(port := free_port()),
        data_dir=data_dir,
        db_url=None,
        federation_interval=0,
        workers=1,
        rate_limit=1_000_000,
    )
    env["OMEGA_ACCESS_TOKEN_TTL"] = str(7 * 86_400)  # simulated days pass in wall minutes
    server = ServerProcess(
        command, env=env, base_url=f"http://127.0.0.1:{port}", log_path=data_dir / "server.log"
    )
    return server.start(), token


def _round(base_url: str, token: str) -> dict[str, Any]:
    answer = httpx.post(
        base_url + "/api/omega/rounds", headers={"Authorization": f"Bearer {token}"}, timeout=600
    )
    if answer.status_code >= 400:
        raise BenchError(f"the round failed: {answer.status_code} {answer.text[:300]}")
    result: dict[str, Any] = answer.json()
    return result


def _rss_mb(pid: int) -> float:
    """A process's resident memory now (Linux ``/proc``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for process {pid}")


def _size_mb(path: Path) -> float:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return round(total / 2**20, 1)
