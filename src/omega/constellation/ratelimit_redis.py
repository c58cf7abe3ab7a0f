"""Rate limits in Redis, through the ``limits`` library (``--rate-limit-url redis://…``).

``limits``' moving window keeps each key's hit times in a Redis list, checked and pushed
by one Lua script per hit: the same window as :class:`ViewerRateLimiter`, shared by every
replica that names the same Redis. A refused hit asks once more for when the window's
oldest hit expires (``Retry-After``). A refund pops the key's newest hit from that list.
"""

from __future__ import annotations

import math
import time
from typing import Any

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import ConfigurationError
from redis.exceptions import RedisError

from omega.constellation.ratelimit import RateDecision, RateLimiter
from omega.errors import ConfigError, StoreError

__all__ = ["RedisLimits"]


class RedisLimits:
    """Counts in the Redis at ``url`` (keys under ``omega-limits/``)."""

    def __init__(self, url: str) -> None:
        try:
            self._storage = RedisStorage(
                url, implementation="redispy", key_prefix="omega-limits", socket_timeout=5
            )
        except ConfigurationError as exc:
            raise ConfigError(f"--rate-limit-url: {exc}") from None
        self._strategy = MovingWindowRateLimiter(self._storage)
        self.where = "Redis (shared by the replicas)"

    def limiter(self, name: str, *, limit: int, window: int) -> RateLimiter:
        return _RedisLimiter(self, name, RateLimitItemPerSecond(limit, window))

    async def open(self) -> None:
        if not await self._storage.check():
            raise StoreError("rate limits: Redis does not answer (--rate-limit-url)")

    async def aclose(self) -> None:
        bridge: Any = self._storage.bridge
        await bridge.get_connection().aclose()

    async def hit(self, item: RateLimitItemPerSecond, name: str, key: str) -> RateDecision:
        try:
            if await self._strategy.hit(item, name, key):
                return RateDecision(allowed=True, remaining=0, retry_after=0)
            reset, _ = await self._strategy.get_window_stats(item, name, key)
        except RedisError as exc:  # translated at the edge
            raise StoreError(f"rate limits: Redis: {type(exc).__name__}: {exc}") from exc
        wait = max(1, math.ceil(reset - time.time()))
        return RateDecision(allowed=False, remaining=0, retry_after=wait)

    async def refund(self, item: RateLimitItemPerSecond, name: str, key: str) -> None:
        bridge: Any = self._storage.bridge
        try:
            await bridge.get_connection().lpop(bridge.prefixed_key(item.key_for(name, key)))
        except RedisError as exc:
            raise StoreError(f"rate limits: Redis: {type(exc).__name__}: {exc}") from exc

    async def active(self, item: RateLimitItemPerSecond, name: str) -> int:
        """Keys of ``name`` with a hit in the window: their lists expire with it (a SCAN)."""
        bridge: Any = self._storage.bridge
        pattern = bridge.prefixed_key(item.key_for(name, "*"))
        try:
            return sum([1 async for _ in bridge.get_connection().scan_iter(match=pattern)])
        except RedisError as exc:
            raise StoreError(f"rate limits: Redis: {type(exc).__name__}: {exc}") from exc


class _RedisLimiter:
    def __init__(self, store: RedisLimits, name: str, item: RateLimitItemPerSecond) -> None:
        self._store, self._name, self._item = store, name, item

    @property
    def limit(self) -> int:
        return int(self._item.amount)

    async def hit(self, key: str) -> RateDecision:
        return await self._store.hit(self._item, self._name, key)

    async def refund(self, key: str) -> None:
        await self._store.refund(self._item, self._name, key)

    async def active(self) -> int:
        return await self._store.active(self._item, self._name)
