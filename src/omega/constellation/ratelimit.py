"""Per-viewer rate limiting on the maintained ``limits`` library (moving window, in memory).

A moving window counts each request for exactly ``window`` seconds, so a device cannot
double its budget at a fixed-window boundary. The counters live in this process: with
several server processes behind a balancer each enforces the limit on its share; point
``limits`` at Redis (``storage_from_string``) if a fleet-wide budget is ever needed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

__all__ = ["RateDecision", "ViewerRateLimiter"]


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    remaining: int
    retry_after: int  # whole seconds until one more request is allowed (0 if allowed)


class ViewerRateLimiter:
    """``limit`` requests per ``window`` seconds for each key (a viewer id)."""

    def __init__(self, *, limit: int, window: int) -> None:
        self._item = RateLimitItemPerSecond(limit, window)
        self._storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage)

    @property
    def limit(self) -> int:
        return int(self._item.amount)

    def hit(self, key: str) -> RateDecision:
        if self._limiter.hit(self._item, "viewer", key):
            stats = self._limiter.get_window_stats(self._item, "viewer", key)
            return RateDecision(allowed=True, remaining=stats.remaining, retry_after=0)
        stats = self._limiter.get_window_stats(self._item, "viewer", key)
        # limits reports the reset moment on the wall clock it uses itself.
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        return RateDecision(allowed=False, remaining=0, retry_after=wait)

    def close(self) -> None:
        self._storage.reset()
