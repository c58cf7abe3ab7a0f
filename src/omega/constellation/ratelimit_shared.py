"""Rate limits that hold across replicas: the counts in PostgreSQL or Redis, not in memory.

Several ``omega serve`` processes on one database would each grant a viewer the whole
limit if each counted alone. ``open_limit_store(settings)`` picks where the counts live
(``Settings.rate_limit_url``):

- unset: the store's database when it is PostgreSQL (:class:`PostgresLimits`), else this
  process's memory (SQLite is one process's store anyway);
- ``memory://``: this process only (one replica on PostgreSQL, saving a round trip);
- ``redis://host:6379/0`` (or ``rediss://``): Redis, through the ``limits`` library's
  moving window (:class:`RedisLimits`);
- ``postgresql://…``: that PostgreSQL database.

Every store keeps the same moving window as :class:`ViewerRateLimiter`: a key has at most
``limit`` hits in any ``window`` seconds, whichever replica answered them. PostgreSQL
keeps a key's hits as an array in one row of the unlogged ``rate_hits`` table, changed by
one atomic upsert (migration 0009); the hits that arrive while one upsert is under way
share the next, so a busy replica pays one round trip for many requests. Times are the
replicas' wall clocks (kept within milliseconds by NTP: nothing next to a 60 s window).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Protocol

import psycopg
from psycopg_pool import AsyncConnectionPool

from omega.constellation.ratelimit import RateDecision, RateLimiter, ViewerRateLimiter
from omega.errors import ConfigError, StoreError
from omega.storage import postgres_dsn

__all__ = ["LimitStore", "MemoryLimits", "PostgresLimits", "open_limit_store"]

_REDIS = ("redis://", "rediss://")


class LimitStore(Protocol):
    """Where a process's limiters keep their counts; opened and closed by the lifespan."""

    #: What the start-up log names (no password).
    where: str

    def limiter(self, name: str, *, limit: int, window: int) -> RateLimiter:
        """A limiter of ``limit`` hits per ``window`` s for each key; ``name`` keeps its
        keys apart from other limiters' in a shared store."""
        ...

    async def open(self) -> None: ...

    async def aclose(self) -> None: ...


def open_limit_store(
    rate_limit_url: str | None, storage_url: str, *, clock: Callable[[], float] = time.time
) -> LimitStore:
    """The limit store a setting names (see the module docstring); ConfigError for a URL
    of no known kind. Nothing is connected until ``open()``."""
    url = (rate_limit_url if rate_limit_url is not None else _default(storage_url)).strip()
    if url == "memory://":
        return MemoryLimits()
    dsn = postgres_dsn(url)
    if dsn is not None:
        return PostgresLimits(dsn, clock=clock)
    if url.startswith(_REDIS):
        from omega.constellation.ratelimit_redis import RedisLimits

        return RedisLimits(url)
    raise ConfigError(
        f"unknown rate limit URL {url!r} (--rate-limit-url, OMEGA_RATE_LIMIT_URL): use "
        "memory://, redis://host:6379/0 or postgresql://…"
    )


def _default(storage_url: str) -> str:
    return storage_url if postgres_dsn(storage_url) is not None else "memory://"


class MemoryLimits:
    """Counts in this process (:class:`ViewerRateLimiter`)."""

    where = "memory (this process)"

    def __init__(self) -> None:
        self._limiters: list[ViewerRateLimiter] = []

    def limiter(self, name: str, *, limit: int, window: int) -> RateLimiter:
        limiter = ViewerRateLimiter(limit=limit, window=window)
        self._limiters.append(limiter)
        return limiter

    async def open(self) -> None:
        return None

    async def aclose(self) -> None:
        for limiter in self._limiters:
            limiter.close()


# One statement for the hits waiting (distinct keys, in key order: two replicas lock
# rows in the same order). Each key's old hits still in the window are kept; the new one
# is added if they are fewer than the limit. ``allowed`` records which happened
# (RETURNING sees only the new row). Parameters: keys, now, window start, limit.
_HIT = """
INSERT INTO rate_hits AS r (key, hits, allowed)
SELECT k, ARRAY[%(now)s::float8], TRUE FROM unnest(%(keys)s::text[]) AS k
ON CONFLICT (key) DO UPDATE SET
    allowed = cardinality(ARRAY(SELECT h FROM unnest(r.hits) h WHERE h > %(start)s))
              < %(limit)s,
    hits = CASE
        WHEN cardinality(ARRAY(SELECT h FROM unnest(r.hits) h WHERE h > %(start)s)) < %(limit)s
        THEN ARRAY(SELECT h FROM unnest(r.hits) h WHERE h > %(start)s) || %(now)s::float8
        ELSE ARRAY(SELECT h FROM unnest(r.hits) h WHERE h > %(start)s)
    END
RETURNING key, allowed, cardinality(hits), (SELECT min(h) FROM unnest(hits) h)
"""
_REFUND = (
    "UPDATE rate_hits SET hits = hits[1:cardinality(hits) - 1]"
    " WHERE key = %s AND cardinality(hits) > 0"
)
# Keys of one limiter with a hit in the window (scrapes only: a scan of the table).
_ACTIVE = (
    "SELECT count(*) FROM rate_hits WHERE starts_with(key, %s)"
    " AND (SELECT max(h) FROM unnest(hits) h) > %s"
)
# Keys with no hit left in the window, once a window per process (any replica's sweep
# serves all; a key swept while in use only forgets hits already out of its window).
_SWEEP = "DELETE FROM rate_hits WHERE (SELECT max(h) FROM unnest(hits) h) <= %s OR hits = '{}'"

#: A hit waiting for the next statement: its key, limit, window and who awaits it.
_Waiting = tuple[str, int, int, "asyncio.Future[RateDecision]"]


class PostgresLimits:
    """Counts in the ``rate_hits`` table, through a small pool of async connections (the
    hit runs on the event loop: no thread hop on the hot path)."""

    where = "PostgreSQL (shared by the replicas)"

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self._pool = AsyncConnectionPool(
            url, min_size=1, max_size=4, open=False, kwargs={"autocommit": True}
        )
        self._clock = clock
        self._next_sweep = 0.0
        self._waiting: list[_Waiting] = []
        self._flusher: asyncio.Task[None] | None = None

    def limiter(self, name: str, *, limit: int, window: int) -> RateLimiter:
        return _PostgresLimiter(self, name, limit=limit, window=window)

    async def open(self) -> None:
        try:
            await self._pool.open(wait=True, timeout=10)
        except psycopg.Error as exc:
            await self._pool.close()
            raise StoreError(f"rate limits: PostgreSQL unavailable: {exc}".strip()) from exc

    async def aclose(self) -> None:
        await self._pool.close()

    async def hit(self, key: str, *, limit: int, window: int) -> RateDecision:
        """Count ``key``'s hit with the others waiting: one statement carries every hit
        that arrived while the previous one was under way (none waits for a timer)."""
        future: asyncio.Future[RateDecision] = asyncio.get_running_loop().create_future()
        self._waiting.append((key, limit, window, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            await self._flush_waiting()
        finally:  # cancelled (shutdown) or broken: nobody may wait forever
            batch, self._waiting = self._waiting, []
            for *_, future in batch:
                future.cancel()

    async def _flush_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            now, seen = self._clock(), set()
            groups: dict[tuple[int, int], list[_Waiting]] = {}
            for waiting in batch:
                if waiting[0] in seen:  # a key twice: its second hit goes in the next one
                    self._waiting.append(waiting)
                    continue
                seen.add(waiting[0])
                groups.setdefault((waiting[1], waiting[2]), []).append(waiting)
            for (limit, window), hits in groups.items():
                await self._upsert(hits, now=now, limit=limit, window=window)

    async def _upsert(self, hits: list[_Waiting], *, now: float, limit: int, window: int) -> None:
        params = {"keys": sorted(h[0] for h in hits), "now": now, "start": now - window}
        params["limit"] = limit
        try:
            async with self._pool.connection() as conn:
                if now >= self._next_sweep:
                    self._next_sweep = now + window
                    await conn.execute(_SWEEP, (now - window,))
                rows = await (await conn.execute(_HIT, params)).fetchall()
        except Exception as exc:  # the waiters get it: psycopg's translated, ours as is
            error = exc
            if isinstance(exc, psycopg.Error):
                error = StoreError(f"rate limits: PostgreSQL: {type(exc).__name__}: {exc}")
            for *_, future in hits:
                if not future.done():
                    future.set_exception(error)
            return
        decided = {
            key: _decision(allowed, count, oldest, now=now, limit=limit, window=window)
            for key, allowed, count, oldest in rows
        }
        for key, *_, future in hits:
            if not future.done():  # its caller may have gone (a client that hung up)
                future.set_result(decided[key])

    async def refund(self, key: str) -> None:
        try:
            async with self._pool.connection() as conn:
                await conn.execute(_REFUND, (key,))
        except psycopg.Error as exc:
            raise StoreError(f"rate limits: PostgreSQL: {type(exc).__name__}: {exc}") from exc

    async def active(self, prefix: str, *, window: int) -> int:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(_ACTIVE, (prefix, self._clock() - window))
                row = await cur.fetchone()
        except psycopg.Error as exc:
            raise StoreError(f"rate limits: PostgreSQL: {type(exc).__name__}: {exc}") from exc
        return int(row[0]) if row is not None else 0


def _decision(
    allowed: bool, count: int, oldest: float, *, now: float, limit: int, window: int
) -> RateDecision:
    if allowed:
        return RateDecision(allowed=True, remaining=limit - count, retry_after=0)
    wait = max(1, math.ceil(oldest + window - now))
    return RateDecision(allowed=False, remaining=0, retry_after=wait)


class _PostgresLimiter:
    """One limiter's view of :class:`PostgresLimits`: its keys prefixed by its name."""

    def __init__(self, store: PostgresLimits, name: str, *, limit: int, window: int) -> None:
        self._store, self._prefix = store, name + ":"
        self._limit, self._window = limit, window

    @property
    def limit(self) -> int:
        return self._limit

    async def hit(self, key: str) -> RateDecision:
        return await self._store.hit(self._prefix + key, limit=self._limit, window=self._window)

    async def refund(self, key: str) -> None:
        await self._store.refund(self._prefix + key)

    async def active(self) -> int:
        """Keys of this limiter with a hit in the window, on every replica."""
        return await self._store.active(self._prefix, window=self._window)
