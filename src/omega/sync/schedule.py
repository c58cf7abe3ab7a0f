"""When a device syncs next: the runtime's decisions, with no I/O.

- The **first** sync after start comes uniformly within ``first_delay``: a region whose
  TVs all power on after a blackout does not arrive at once.
- After a **success**: the ``interval`` spread by ± ``jitter``, and never sooner than the
  server's ``next_sync_after`` (its pace under load); when the server has ``more`` to
  send, its own short ``next_sync_after`` instead.
- After the **n-th failure in a row**: full jitter, uniform in [0, min(cap, base·2^(n-1))]
  (AWS's "exponential backoff and jitter"): a fleet that failed together comes back
  spread over the whole window. Never below the server's ``Retry-After``, honoured up to
  ``max_retry_after``. A refusal that may heal (a 401/403 that is not the constellation's
  lasting refusal: a captive portal, a clock not yet set; ``omega.sync.replies``) waits
  ``refused_floor`` more: asking again at once would only be refused again. There is no
  last try: the outbox keeps everything meanwhile.

The window is tenacity's ``wait_exponential``; the draw is the caller's own
``random.Random`` (tenacity's ``wait_random_exponential`` draws from the ``random``
module's shared state, which a device or a test cannot seed alone).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tenacity import RetryCallState, Retrying, wait_exponential

from omega.errors import ConfigError, ServerError

__all__ = ["SyncSchedule"]

_RETRYING = Retrying()  # a RetryCallState must name one; the wait reads only the attempt


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncSchedule:
    """How often a device syncs, and how it waits after failures (seconds throughout)."""

    #: The device's own pace (the adaptive loop: 30 min).
    interval: float = 1800.0
    #: Each interval is spread uniformly by ± this fraction of it.
    jitter: float = 0.1
    #: The first backoff window; it doubles with each failure in a row, up to ``cap``.
    base: float = 1.0
    cap: float = 900.0
    #: The first sync comes uniformly within this long after start (0: at once).
    first_delay: float = 30.0
    #: A server's ``Retry-After`` is honoured up to this long (a day: beyond it the
    #: header is more likely wrong than meant).
    max_retry_after: float = 86_400.0
    #: Added to the backoff after a refusal (401/403) that may heal.
    refused_floor: float = 60.0

    def __post_init__(self) -> None:
        if not self.interval > 0:
            raise ConfigError(f"the sync interval must be > 0 seconds, got {self.interval!r}")
        if not 0 <= self.jitter < 1:
            raise ConfigError(f"jitter must be in [0, 1), got {self.jitter!r}")
        if not 0 < self.base <= self.cap:
            raise ConfigError(f"backoff needs 0 < base ≤ cap, got {self.base!r}, {self.cap!r}")
        if not self.first_delay >= 0 or not self.max_retry_after >= 0:
            raise ConfigError("first_delay and max_retry_after must be ≥ 0 seconds")
        if not self.refused_floor >= 0:
            raise ConfigError(f"refused_floor must be ≥ 0 seconds, got {self.refused_floor!r}")

    def first(self, rng: random.Random) -> float:
        return rng.uniform(0.0, self.first_delay)

    def after_success(
        self, rng: random.Random, *, next_sync_after: float, more: bool = False
    ) -> float:
        if more:
            return max(0.0, next_sync_after)
        spread = self.interval * rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)
        return max(spread, next_sync_after)

    def window(self, failures: int) -> float:
        """The backoff window after ``failures`` failures in a row: min(cap, base·2^(n-1))."""
        state = RetryCallState(_RETRYING, None, (), {})
        state.attempt_number = max(1, failures)
        return float(wait_exponential(multiplier=self.base, max=self.cap)(state))

    def after_failure(self, rng: random.Random, *, failures: int, error: BaseException) -> float:
        wait = rng.uniform(0.0, self.window(failures))
        if not isinstance(error, ServerError):
            return wait
        if error.status in (401, 403):
            wait += self.refused_floor
        if error.retry_after is not None:
            wait = max(wait, min(error.retry_after, self.max_retry_after))
        return wait
