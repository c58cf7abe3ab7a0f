"""The shared rate limit stores keep the in-memory limiter's moving window: PostgreSQL
(the ``rate_hits`` table) and Redis (the ``limits`` library), each with two store objects
standing for two replicas."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from omega.clock import ManualClock
from omega.constellation.ratelimit import RateLimiter
from omega.constellation.ratelimit_redis import RedisLimits
from omega.constellation.ratelimit_shared import (
    LimitStore,
    MemoryLimits,
    PostgresLimits,
    open_limit_store,
)
from omega.errors import ConfigError, StoreError
from omega.storage import open_storage


def _run(stores: list[LimitStore], body: Callable[[list[RateLimiter]], Awaitable[None]]) -> None:
    async def main() -> None:
        for store in stores:
            await store.open()
        try:
            limiters = [s.limiter("viewer", limit=3, window=60) for s in stores]
            await body(limiters)
        finally:
            for store in stores:
                await store.aclose()

    asyncio.run(main())


@pytest.mark.postgres
def test_postgres_hits_from_two_replicas_share_one_moving_window(postgres_db_url: str) -> None:
    open_storage(postgres_db_url).close()  # migrated: the table is there
    clock = ManualClock(1000.0)
    stores: list[LimitStore] = [PostgresLimits(postgres_db_url, clock=clock.now) for _ in "ab"]

    async def body(limiters: list[RateLimiter]) -> None:
        a, b = limiters
        assert [(await x.hit("tv")).allowed for x in (a, b, a)] == [True, True, True]
        clock.advance(10)
        refused = await b.hit("tv")
        assert not refused.allowed and refused.retry_after == 50  # the first hit's expiry
        assert (await a.hit("another-tv")).allowed  # keys apart
        assert await b.active() == 2  # both replicas' keys
        await b.refund("tv")  # the newest hit given back: one more fits
        assert (await a.hit("tv")).allowed and not (await b.hit("tv")).allowed
        clock.advance(50)  # the first two hits left the window (and the sweep ran)
        assert [(await x.hit("tv")).allowed for x in (b, a, b)] == [True, True, False]

    _run(stores, body)


@pytest.mark.postgres
def test_postgres_hits_arriving_together_are_each_counted(postgres_db_url: str) -> None:
    """Hits waiting together share one statement; a key twice among them is counted
    twice (its second hit goes in the next statement)."""
    open_storage(postgres_db_url).close()
    stores: list[LimitStore] = [PostgresLimits(postgres_db_url) for _ in "ab"]

    async def body(limiters: list[RateLimiter]) -> None:
        a, b = limiters
        hits = [(a, b)[n % 2].hit("tv") for n in range(10)]
        hits += [a.hit(f"tv-{n}") for n in range(20)]
        decisions = await asyncio.gather(*hits)
        assert sum(d.allowed for d in decisions[:10]) == 3  # limit 3, on both replicas
        assert all(d.allowed for d in decisions[10:])

    _run(stores, body)


@pytest.mark.postgres
def test_postgres_limits_name_a_database_that_does_not_answer() -> None:
    store = PostgresLimits("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    with pytest.raises(StoreError, match="rate limits: PostgreSQL unavailable"):
        asyncio.run(store.open())


def test_redis_hits_from_two_replicas_share_one_moving_window(redis_url: str) -> None:
    stores: list[LimitStore] = [RedisLimits(redis_url), RedisLimits(redis_url)]

    async def body(limiters: list[RateLimiter]) -> None:
        a, b = limiters
        key = f"tv-{id(a)}"
        assert [(await x.hit(key)).allowed for x in (a, b, a)] == [True, True, True]
        refused = await b.hit(key)
        assert not refused.allowed and 1 <= refused.retry_after <= 60
        assert (await a.hit(key + "-other")).allowed
        assert await b.active() >= 2  # this test's keys, on both (the server may hold more)
        await b.refund(key)
        assert (await a.hit(key)).allowed and not (await b.hit(key)).allowed

    _run(stores, body)


def test_the_store_follows_the_setting(redis_url: str) -> None:
    assert isinstance(open_limit_store(None, "sqlite:///x.db"), MemoryLimits)
    assert isinstance(open_limit_store(None, "postgresql://h/db"), PostgresLimits)
    assert isinstance(open_limit_store("memory://", "postgresql://h/db"), MemoryLimits)
    assert isinstance(open_limit_store(redis_url, "sqlite:///x.db"), RedisLimits)
    with pytest.raises(ConfigError, match="--rate-limit-url"):
        open_limit_store("mongodb://h", "sqlite:///x.db")


def test_a_redis_that_does_not_answer_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="Redis does not answer"):
        asyncio.run(RedisLimits("redis://127.0.0.1:1/0").open())
