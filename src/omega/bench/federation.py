"""``omega bench federation``: one real round over a real SQLite store.

The fill (registering viewers, ``ingest`` of one push per viewer) is timed separately as
``fill_s``; ``round_s`` times exactly one ``run_round`` on a freshly opened store (default
settings, as ``omega worker`` opens it): applying the queued contributions to the live
set, reading it, consolidation, trends, diff and the atomic commit.

With ``engines`` the same filled store is copied once per engine and each copy gets its
round: the local engine and a Dask cluster of each size (started before its round, its
start-up reported apart), or the cluster at ``address``. ``identical_release`` says
whether every engine published the same release.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from omega.errors import InputError
from omega.federation.config import FederationConfig
from omega.federation.engines import DaskEngine, Engine
from omega.federation.rounds import run_round
from omega.federation.synthetic import SyntheticWorld, make_world
from omega.protocol.messages import PushAck, PushRequest
from omega.storage.base import ViewerRecord
from omega.storage.factory import open_storage
from omega.storage.sqlite import SQLiteStorage

__all__ = ["run_federation_bench"]

_NOW = 1_750_000_000.0


def run_federation_bench(
    patterns: int,
    viewers: int,
    seed: int = 0,
    *,
    engines: Sequence[int] = (),
    address: str | None = None,
) -> dict[str, Any]:
    """Fill a temporary SQLite store with ``patterns`` live patterns from ``viewers``
    synthetic viewers, run one full round and report what it measured; then, on copies of
    the same store, one round on a local Dask cluster of each size in ``engines`` (or on
    the cluster at ``address``)."""
    if patterns < 1 or viewers < 1:
        raise InputError("patterns and viewers must be ≥ 1")
    if any(w < 1 for w in engines):
        raise InputError("--engine-workers must be ≥ 1 each")
    per_viewer, extra = divmod(patterns, viewers)
    world = make_world(viewers=viewers, patterns_per_viewer=per_viewer + 1, seed=seed)
    with tempfile.TemporaryDirectory(prefix="omega-bench-federation-") as tmp:
        base = Path(tmp) / "filled"
        base.mkdir()
        started = time.perf_counter()
        filled = _fill(base / "constellation.db", world, per_viewer, extra)
        fill_s = time.perf_counter() - started
        runs = [_round_on_copy(base, Path(tmp) / "local", None)]
        sizes: list[int | None] = [None] if address is not None else list(engines)
        for workers in sizes:
            runs.append(_dask_round(base, Path(tmp) / f"dask-{workers}", workers, address))
    local = runs[0]
    row: dict[str, Any] = {
        "patterns": filled,
        "viewers": viewers,
        **{k: local[k] for k in ("round_s", "patterns_per_s", "released", "trends")},
        "status": local["status"],
        "version": local["version"],
        "fill_s": round(fill_s, 2),
        "steps_s": local["steps_s"],
    }
    if len(runs) > 1:
        row["engines"] = [{k: v for k, v in r.items() if k != "digest"} for r in runs]
        row["identical_release"] = len({r["digest"] for r in runs}) == 1
    return row


def _dask_round(base: Path, run: Path, workers: int | None, address: str | None) -> dict[str, Any]:
    """One round on a copy of ``base`` with a Dask cluster (started here, then closed)."""
    started = time.perf_counter()
    engine = DaskEngine(address=address, workers=workers or 1)
    try:
        start_s = time.perf_counter() - started
        row = _round_on_copy(base, run, engine)
    finally:
        engine.close()
    return {**row, "start_s": round(start_s, 2)}


def _round_on_copy(base: Path, run: Path, engine: Engine | None) -> dict[str, Any]:
    """Copy the filled store to ``run``, time one round on it, and digest its release."""
    shutil.copytree(base, run)
    storage = open_storage(f"sqlite:///{run / 'constellation.db'}")
    try:
        started = time.perf_counter()
        result = run_round(
            storage, FederationConfig(), now=_NOW + 60.0, worker_id="bench", engine=engine
        )
        round_s = time.perf_counter() - started
        release = msgspec.msgpack.encode([storage.current_release(), storage.current_trends()])
    finally:
        storage.close()
    shutil.rmtree(run)
    return {
        "engine": "local" if engine is None else "dask",
        "workers": 1 if engine is None else engine.workers,
        "round_s": round(round_s, 4),
        "patterns_per_s": round(result.live / round_s, 1) if round_s > 0 else None,
        "plan_s": round(result.timings["consolidated"] - result.timings["read"], 4),
        "released": result.released,
        "trends": result.trends,
        "status": result.status,
        "version": result.version,
        "steps_s": result.timings,
        "digest": hashlib.sha256(release).hexdigest(),
    }


def _fill(path: Path, world: SyntheticWorld, per_viewer: int, extra: int) -> int:
    """Register every viewer and push its patterns (queued for the round to apply)."""
    storage = SQLiteStorage(path, synchronous="NORMAL")  # the fill is not what we measure
    try:
        storage.migrate()
        storage.put_codebook(world.codebook)
        total = 0
        for i, viewer in enumerate(world.viewers):
            patterns = viewer.patterns[: per_viewer + (1 if i < extra else 0)]
            storage.create_viewer(
                ViewerRecord(viewer.viewer_id, viewer.region, "bench-tv", created_at=_NOW)
            )
            push = PushRequest(
                viewer_id=viewer.viewer_id,
                batch_id=f"b{i}",
                codebook_id=world.codebook.codebook_id,
                added=patterns,
            )
            ack = PushAck(batch_id=push.batch_id, accepted=[p.id for p in patterns])
            digest = hashlib.sha256(f"{viewer.viewer_id}/{i}".encode()).hexdigest()
            storage.ingest(push, digest=digest, region=viewer.region, ack=ack, now=_NOW)
            total += len(patterns)
        return total
    finally:
        storage.close()
