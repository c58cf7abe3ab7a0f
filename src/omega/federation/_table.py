"""Live patterns as columns: one pass over the Python objects, then numpy everywhere."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from omega.federation.config import FederationConfig
from omega.protocol import CELLS_BY_TASK
from omega.protocol.messages import PatternContext, TaskType
from omega.storage.base import LivePattern

TASKS: tuple[TaskType, ...] = ("preference", "recommendation", "discovery", "behaviour")
BEHAVIOUR = TASKS.index("behaviour")
RECOMMENDATION = TASKS.index("recommendation")
_TIMES = ("morning", "afternoon", "evening", "night", "any")
_DAYS = ("weekday", "weekend", "any")
CONTEXTS: tuple[PatternContext, ...] = tuple(
    PatternContext(time_bucket=t, day_type=d)  # type: ignore[arg-type]
    for t in _TIMES
    for d in _DAYS
)
_CONTEXT_CODE = {(c.time_bucket, c.day_type): i for i, c in enumerate(CONTEXTS)}
_TASK_CODE = {t: i for i, t in enumerate(TASKS)}

#: Patterns stamped slightly in the future (clock skew between hosts) are still counted.
CLOCK_SKEW_S = 300.0

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
#: One valid pattern in PatternTable's column order: viewer, region, task, context, cell0,
#: cell1 (ints), then success, support, updated_at (floats).
_Row = tuple[int, int, int, int, int, int, float, float, float]


@dataclass(frozen=True, slots=True)
class PatternTable:
    """Valid, fresh, quality-passing patterns as parallel arrays (one row per pattern)."""

    viewer: I64  # index into ``viewers``
    region: I64  # index into ``regions``
    task: I64
    context: I64
    cell0: I64
    cell1: I64  # -1 when the pattern has one cell
    success: F64
    support: F64
    updated_at: F64
    viewers: list[str]
    regions: list[str]
    received: int  # patterns handed in
    invalid: int  # malformed (bad cells, arity, NaN, support < 1) or stale
    low_quality: int  # dropped by the quality filter

    @property
    def quality(self) -> F64:
        """Success for positive tasks, 1 - success (abandonment) for behaviour."""
        return np.where(self.task == BEHAVIOUR, 1.0 - self.success, self.success)

    @property
    def target(self) -> I64:
        """The cell a pattern says something about: b for (a, b), else its one cell."""
        return np.where(self.cell1 >= 0, self.cell1, self.cell0)

    def __len__(self) -> int:
        return len(self.viewer)


def build_table(
    live: Sequence[LivePattern], config: FederationConfig, *, k: int, now: float
) -> PatternTable:
    """Columns of the patterns that are well-formed, no older than ``max_age_s`` and pass
    the quality filter (positive: success ≥ min_quality; behaviour: success ≤ 1 - it).

    ``success`` is always the viewer's success with the content: behaviour rates sent in
    the "abandonment" convention are turned around here (and back in the release).

    Long on purpose: one pass of checks over each live pattern (100K and more a round),
    read top to bottom and kept inline in the hot loop; ``_table`` makes the columns."""
    min_quality = config.min_quality
    oldest, newest = now - config.max_age_s, now + CLOCK_SKEW_S
    flip = config.behaviour_rate == "abandonment"
    viewer_ids: dict[str, int] = {}
    region_ids: dict[str, int] = {}
    rows: list[_Row] = []
    invalid = low = 0
    for lp in live:
        p = lp.pattern
        cells = p.cells
        arity = CELLS_BY_TASK.get(p.task)
        s = p.success_rate
        if flip and p.task == "behaviour":
            s = 1.0 - s
        if (
            arity is None
            or len(cells) != arity
            or not all(0 <= c < k for c in cells)
            or not (0.0 <= s <= 1.0)  # also False for NaN
            or p.support < 1
            or not (oldest <= lp.updated_at <= newest)
        ):
            invalid += 1
            continue
        if (s < min_quality) if p.task != "behaviour" else (1.0 - s < min_quality):
            low += 1
            continue
        context = _CONTEXT_CODE.get((p.context.time_bucket, p.context.day_type))
        if context is None:
            invalid += 1
            continue
        viewer = viewer_ids.setdefault(lp.viewer_id, len(viewer_ids))
        region = region_ids.setdefault(lp.region, len(region_ids))
        rows.append(
            (
                viewer,
                region,
                _TASK_CODE[p.task],
                context,
                cells[0],
                cells[1] if arity == 2 else -1,
                s,
                float(p.support),
                lp.updated_at,
            )
        )
    return _table(
        rows,
        viewers=list(viewer_ids),
        regions=list(region_ids),
        received=len(live),
        invalid=invalid,
        low_quality=low,
    )


def _table(
    rows: list[_Row],
    *,
    viewers: list[str],
    regions: list[str],
    received: int,
    invalid: int,
    low_quality: int,
) -> PatternTable:
    """The valid patterns' rows as columns."""
    ints = np.array([r[:6] for r in rows], dtype=np.int64).reshape(-1, 6)
    floats = np.array([r[6:] for r in rows], dtype=np.float64).reshape(-1, 3)
    return PatternTable(
        viewer=ints[:, 0].copy(),
        region=ints[:, 1].copy(),
        task=ints[:, 2].copy(),
        context=ints[:, 3].copy(),
        cell0=ints[:, 4].copy(),
        cell1=ints[:, 5].copy(),
        success=floats[:, 0].copy(),
        support=floats[:, 1].copy(),
        updated_at=floats[:, 2].copy(),
        viewers=viewers,
        regions=regions,
        received=received,
        invalid=invalid,
        low_quality=low_quality,
    )
