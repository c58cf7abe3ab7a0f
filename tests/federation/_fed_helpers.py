"""Builders shared by the federation tests."""

from __future__ import annotations

import hashlib

import msgspec
import numpy as np

from omega.protocol.messages import Pattern, PatternContext, PushAck, PushRequest, TaskType
from omega.storage.base import Codebook, LivePattern, Storage, ViewerRecord

NOW = 1_750_000_000.0


def orthogonal_centroids(k: int, dim: int | None = None) -> np.ndarray:
    """k mutually orthogonal unit centroids: every cell is its own group."""
    return np.eye(k, dim or k, dtype=np.float32)


def live(
    viewer: str,
    cells: tuple[int, ...],
    *,
    task: TaskType | None = None,
    success: float = 0.9,
    support: int = 10,
    pid: str | None = None,
    context: PatternContext | None = None,
    region: str = "eu",
    updated_at: float = NOW,
) -> LivePattern:
    task = task or ("recommendation" if len(cells) == 2 else "preference")
    pattern = Pattern(
        id=pid or f"{task}-{'-'.join(map(str, cells))}",
        task=task,
        cells=cells,
        context=context or PatternContext(),
        success_rate=success,
        support=support,
    )
    return LivePattern(viewer, region, "cb", pattern, updated_at)


def codebook(k: int = 16) -> Codebook:
    return Codebook("cb", dim=k, centroids_f16=np.eye(k, dtype="<f2").tobytes(), k=k)


def push(
    store: Storage,
    viewer: str,
    *,
    added: list[Pattern] = (),  # type: ignore[assignment]
    removed: list[str] = (),  # type: ignore[assignment]
    batch: str = "b1",
    region: str = "eu",
    now: float = NOW,
) -> None:
    """Register ``viewer`` if needed and ingest one push with every pattern accepted."""
    if store.get_viewer(viewer) is None:
        store.create_viewer(ViewerRecord(viewer, region, "test-tv", created_at=now))
    request = PushRequest(
        viewer_id=viewer, batch_id=batch, codebook_id="cb", added=list(added), removed=list(removed)
    )
    ack = PushAck(batch_id=batch, accepted=[p.id for p in added])
    digest = hashlib.sha256(msgspec.msgpack.encode(request)).hexdigest()
    store.ingest(request, digest=digest, region=region, ack=ack, now=now)


def pattern(cells: tuple[int, ...], *, success: float = 0.9, support: int = 10) -> Pattern:
    task: TaskType = "recommendation" if len(cells) == 2 else "preference"
    return Pattern(
        id=f"{task}-{'-'.join(map(str, cells))}",
        task=task,
        cells=cells,
        success_rate=success,
        support=support,
    )
