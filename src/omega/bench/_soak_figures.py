"""The soak's figures from its load's samples: syncs, errors, latency in and out of faults.

The load process (:mod:`omega.bench.soak_load`) wrote each sync's start on the host's
monotonic clock, its latency (from the time it was due, so time queued in the client
counts) and its error kind; the soak knows when each fault began and ended on the same
clock. A sync is *in* a fault when it was under way at any moment of the fault's window
(the fault and ``_SETTLE`` seconds after it).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Samples", "Window", "fault_effects", "latency_figures", "sync_figures"]


@dataclass(frozen=True, slots=True)
class Window:
    """When a fault touched the syncs (monotonic seconds), and its index among events."""

    event: int
    start: float
    end: float


@dataclass(frozen=True)
class Samples:
    """The syncs of the run proper (those of the drain after it are left out)."""

    start: npt.NDArray[np.float64]
    latency: npt.NDArray[np.float64]
    error: npt.NDArray[np.uint16]
    kinds: list[str]

    @classmethod
    def load(cls, path: Path, *, until: float) -> Samples:
        with np.load(path) as saved:
            run = saved["start"] < until
            return cls(
                saved["start"][run],
                saved["latency"][run],
                saved["error"][run],
                [str(k) for k in saved["kinds"]],
            )

    def touching(self, window: Window) -> npt.NDArray[np.bool_]:
        return (self.start < window.end) & (self.start + self.latency > window.start)


def sync_figures(samples: Samples, *, seconds: float, offered: float) -> dict[str, Any]:
    attempted = len(samples.start)
    failed = samples.error != 0
    errors = int(failed.sum())
    by_kind = Counter(samples.kinds[int(code)] for code in samples.error[failed])
    return {
        "attempted": attempted,
        "ok": attempted - errors,
        "errors": errors,
        "error_rate": round(errors / attempted, 5) if attempted else None,
        "errors_by_kind": dict(by_kind.most_common()),
        "offered_per_s": offered,
        "attempted_per_s": round(attempted / seconds, 1),
        "achieved_per_s": round((attempted - errors) / seconds, 1),
    }


def _percentiles(latency_s: npt.NDArray[np.float64]) -> dict[str, Any]:
    if not len(latency_s):
        return {"syncs": 0}
    ms = latency_s * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {
        "syncs": len(ms),
        "p50": round(float(p50), 2),
        "p95": round(float(p95), 2),
        "p99": round(float(p99), 2),
        "max": round(float(ms.max()), 2),
    }


def latency_figures(samples: Samples, windows: list[Window], t0: float) -> dict[str, Any]:
    """Percentiles of the successful syncs' latency: all, outside every fault window,
    inside them (a failed sync's latency is how fast it failed: left out), and the p95
    outside faults minute by minute from ``t0`` (does the server slow down as it runs?)."""
    ok = samples.error == 0
    touched = np.zeros(len(samples.start), dtype=bool)
    for window in windows:
        touched |= samples.touching(window)
    steady = ok & ~touched
    minute = ((samples.start - t0) // 60).astype(int)
    by_minute = [
        round(float(np.percentile(samples.latency[steady & (minute == m)], 95)) * 1000, 1)
        if (steady & (minute == m)).any()
        else None
        for m in range(int(minute.max(initial=-1)) + 1)
    ]
    return {
        "all": _percentiles(samples.latency[ok]),
        "outside_faults": _percentiles(samples.latency[steady]),
        "in_faults": _percentiles(samples.latency[ok & touched]),
        "outside_faults_p95_by_minute": by_minute,
    }


def fault_effects(
    samples: Samples, events: list[dict[str, Any]], windows: list[Window]
) -> list[dict[str, Any]]:
    """The fault events, each with the syncs under way in its window: ok and failed."""
    marked = [dict(e) for e in events]
    for window in windows:
        touched = samples.touching(window)
        failed = samples.error != 0
        marked[window.event]["syncs_ok_in_window"] = int((touched & ~failed).sum())
        marked[window.event]["syncs_failed_in_window"] = int((touched & failed).sum())
    return marked
