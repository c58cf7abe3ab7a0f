"""``omega bench federation``: one real round over a real SQLite store.

The fill (registering viewers, ``ingest`` of one push per viewer) is timed separately as
``fill_s``; ``round_s`` times exactly one ``run_round`` on a freshly opened store (default
settings, as ``omega worker`` opens it): applying the queued contributions to the live
set, reading it, consolidation, trends, diff and the atomic commit.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path
from typing import Any

from omega.errors import InputError
from omega.federation.config import FederationConfig
from omega.federation.rounds import run_round
from omega.federation.synthetic import SyntheticWorld, make_world
from omega.protocol.messages import PushAck, PushRequest
from omega.storage.base import ViewerRecord
from omega.storage.factory import open_storage
from omega.storage.sqlite import SQLiteStorage

__all__ = ["run_federation_bench"]

_NOW = 1_750_000_000.0


def run_federation_bench(patterns: int, viewers: int, seed: int = 0) -> dict[str, Any]:
    """Fill a temporary SQLite store with ``patterns`` live patterns from ``viewers``
    synthetic viewers, run one full round and report what it measured."""
    if patterns < 1 or viewers < 1:
        raise InputError("patterns and viewers must be ≥ 1")
    per_viewer, extra = divmod(patterns, viewers)
    world = make_world(viewers=viewers, patterns_per_viewer=per_viewer + 1, seed=seed)
    config = FederationConfig()
    with tempfile.TemporaryDirectory(prefix="omega-bench-federation-") as tmp:
        path = Path(tmp) / "constellation.db"
        started = time.perf_counter()
        filled = _fill(path, world, per_viewer, extra)
        fill_s = time.perf_counter() - started

        storage = open_storage(f"sqlite:///{path}")
        try:
            started = time.perf_counter()
            result = run_round(storage, config, now=_NOW + 60.0, worker_id="bench")
            round_s = time.perf_counter() - started
        finally:
            storage.close()
    return {
        "patterns": filled,
        "viewers": viewers,
        "round_s": round(round_s, 4),
        "patterns_per_s": round(result.live / round_s, 1) if round_s > 0 else None,
        "released": result.released,
        "trends": result.trends,
        "status": result.status,
        "version": result.version,
        "fill_s": round(fill_s, 2),
        "steps_s": result.timings,
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
