"""Builders shared by the federation tests."""

from __future__ import annotations

import numpy as np

from omega.protocol.messages import Pattern, PatternContext, TaskType
from omega.storage.base import LivePattern

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
