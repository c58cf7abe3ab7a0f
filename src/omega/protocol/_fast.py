"""Fast acceptance of the long lists in a message (patterns, trends, ids).

Each function returns True only for lists the full rules in ``validation`` accept, and
is stricter where that keeps it cheap (exact ``type(x) is float`` rather than any real
number). On False the caller runs the full, field-by-field rules, which either raise with
a precise message or accept what the fast path was too strict for. Building an error
path string for every field of every pattern would cost more than the codec itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omega.protocol._limits import (
    CELLS_BY_TASK,
    DAY_TYPES,
    MAX_CELL,
    MAX_COUNT,
    MAX_ID_LENGTH,
    MAX_VERSION,
    TIME_BUCKETS,
)
from omega.protocol.messages import ConsolidatedPattern, Pattern, PatternContext, Trend

__all__ = ["ids_ok", "patterns_ok", "trends_ok"]

_INF = float("inf")


def patterns_ok(items: Sequence[Any], kind: type[Pattern] | type[ConsolidatedPattern]) -> bool:
    # Globals bound to locals: this loop runs for every pattern of every message.
    arity_of, buckets, days, context_type = (
        CELLS_BY_TASK.get,
        TIME_BUCKETS,
        DAY_TYPES,
        PatternContext,
    )
    max_id, max_cell, max_count, max_version = MAX_ID_LENGTH, MAX_CELL, MAX_COUNT, MAX_VERSION
    consolidated = kind is ConsolidatedPattern
    for p in items:
        if type(p) is not kind:
            return False
        pid, task, cells, ctx, rate = p.id, p.task, p.cells, p.context, p.success_rate
        if not (
            type(pid) is str
            and 0 < len(pid) <= max_id
            and type(task) is str
            and type(cells) is tuple
            and len(cells) == arity_of(task, -1)
            and type(ctx) is context_type
            and type(ctx.time_bucket) is str
            and ctx.time_bucket in buckets
            and type(ctx.day_type) is str
            and ctx.day_type in days
            and type(rate) is float
            and 0.0 <= rate <= 1.0
            and type(p.support) is int
            and 1 <= p.support <= max_count
            and type(p.version) is int
            and 0 <= p.version <= max_version
        ):
            return False
        for cell in cells:
            if type(cell) is not int or not 0 <= cell < max_cell:
                return False
        if consolidated and not (
            type(p.viewers) is int
            and 1 <= p.viewers <= max_count
            and type(p.weight) is float
            and 0.0 <= p.weight < _INF
        ):
            return False
    return True


def trends_ok(items: Sequence[Any]) -> bool:
    for t in items:
        if type(t) is not Trend:
            return False
        cell, region, score, version = t.cell, t.region, t.score, t.version
        if not (
            type(cell) is int
            and 0 <= cell < MAX_CELL
            and type(region) is str
            and 0 < len(region) <= MAX_ID_LENGTH
            and type(score) is float
            and -_INF < score < _INF
            and type(version) is int
            and 0 <= version <= MAX_VERSION
        ):
            return False
    return True


def ids_ok(items: Sequence[object]) -> bool:
    return all(type(i) is str and 0 < len(i) <= MAX_ID_LENGTH for i in items)
