"""When to try again: capped exponential backoff with full jitter (tenacity), honouring
the server's ``Retry-After``.

Only failures worth repeating are retried: the network (no answer) and overload or
server errors (408/425/429/5xx). A push is safe to repeat because it carries the same
batch id and bytes every time. A ``Retry-After`` longer than ``max_retry_after`` is not
slept through: the error goes back to the caller, whose scheduler honours it (the device
runtime, :mod:`omega.sync.runtime`, which does all the waiting itself between syncs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from omega.errors import ConfigError, ServerError
from omega.sync.replies import is_retryable

__all__ = ["RetryPolicy"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    #: Tries in all, the first included.
    attempts: int = 4
    #: The first backoff window (seconds); it doubles per try up to ``cap``.
    base: float = 0.5
    cap: float = 30.0
    #: A server asking to wait longer than this gets its error returned, not slept.
    max_retry_after: float = 120.0
    #: How to wait (tests and simulators pass their own; real code sleeps).
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(f"attempts must be ≥ 1, got {self.attempts}")
        if self.base <= 0 or self.cap < self.base:
            raise ConfigError("backoff needs 0 < base ≤ cap")

    def should_retry(self, error: BaseException) -> bool:
        too_long = (
            isinstance(error, ServerError)
            and error.retry_after is not None
            and error.retry_after > self.max_retry_after
        )
        return not too_long and is_retryable(error)

    def delay(self, state: RetryCallState) -> float:
        """Full jitter: uniform in [0, min(cap, base·2^n)], but never below Retry-After."""
        jitter = wait_random_exponential(multiplier=self.base, max=self.cap)(state)
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, ServerError) and error.retry_after is not None:
            return max(error.retry_after, jitter)
        return float(jitter)

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation`` until it succeeds, fails for good, or the tries run out (then
        its last error is raised as is)."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=self.delay,
            retry=retry_if_exception(self.should_retry),
            sleep=self.sleep,
            reraise=True,
        )

        async def once() -> T:  # tenacity awaits only coroutine functions, not lambdas
            return await operation()

        result: T = await retrying(once)
        return result
