"""What a device gets back from a pull, and when it should come back: pure decisions.

``fit_pull`` turns a storage delta into a ``PullResponse`` that encodes within the
device's byte budget. Patterns arrive ordered by version (then weight), so dropping a
tail keeps every version below the first dropped pattern complete; the cursor handed
back (``version``) is lowered to that, and ``more`` tells the device to pull again.

The budget is a hard cap, so one release version larger than the whole budget cannot be
sent complete. Then the device gets that version's highest-weight patterns that fit and
the cursor moves past the version anyway: the device keeps its top-priority share of
the release instead of pulling the same first page forever. (A device wanting all of
it asks with a larger ``max_bytes``.)

Popularity entries (``delta.popular``, best first) ride on the page that completes the
delta (cursor at ``delta.version``). The list replaces the device's whole list, so that
page keeps room for it: earlier versions go on pages of their own (``more``), and the
last version keeps its highest-weight patterns that fit beside the list (up to
``POPULAR_SHARE`` of the budget is held back for it). Rounds re-release many patterns
whose weight drifted, so without this the last version crowded the list out (devices
held 26 of 500 titles). A budget that cannot hold the whole list keeps its top share.

``Pacer`` steers when a device syncs next: the base interval with jitter (so a fleet
that booted together spreads out), stretched when the server sees more syncs than its
target rate, and short when a pull was cut and more is waiting.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable

import msgspec

from omega.clock import Clock
from omega.protocol.messages import (
    CowatchCursor,
    CowatchPage,
    CowatchRow,
    ItemScore,
    PullResponse,
)
from omega.protocol.validation import MAX_POPULAR_PER_PULL
from omega.storage.base import ReleaseDelta

__all__ = ["Pacer", "fit_pull", "pattern_budget", "with_cowatch"]

#: Smallest encoded pattern we expect; bounds how many rows to ask storage for.
_MIN_PATTERN_BYTES = 24
#: The most of a pull's budget held back for the popularity list on the final page.
POPULAR_SHARE = 0.75


def pattern_budget(max_bytes: int, *, cap: int) -> int:
    """How many patterns to fetch so a ``max_bytes`` answer can be filled."""
    return max(1, min(cap, max_bytes // _MIN_PATTERN_BYTES + 1))


def fit_pull(
    delta: ReleaseDelta,
    *,
    since_version: int,
    max_bytes: int,
    fetched_limit: int,
    size_of: Callable[[PullResponse], int],
) -> PullResponse:
    """The largest prefix of ``delta.patterns`` whose response fits in ``max_bytes``.

    ``next_sync_after`` is left at its default for the caller to set (a float encodes to
    the same size whatever its value)."""

    def build(count: int, *, trends: bool = True) -> PullResponse:
        patterns = delta.patterns[:count]
        if count < len(delta.patterns):
            version = max(since_version, min(delta.version, delta.patterns[count].version - 1))
        else:
            version = delta.version
        if version == since_version and delta.patterns:
            # One version is over the budget (or storage's limit): take its top share, move on.
            version = max(version, delta.patterns[0].version)
        return PullResponse(
            version=version,
            patterns=patterns,
            removed=delta.removed,
            trends=delta.trends if trends else [],
            more=count < len(delta.patterns) or len(delta.patterns) >= fetched_limit,
        )

    whole = build(len(delta.patterns))
    # Room the final page keeps for the popularity list (measured on an answer without it).
    reserve = _popular_reserve(delta, build(0), max_bytes=max_bytes, size_of=size_of)
    if size_of(whole) + reserve <= max_bytes:
        return _with_popular(whole, delta, max_bytes=max_bytes, size_of=size_of)
    # Each page's patterns must fit ``limit`` beside ``beside`` (the list, on a final page).
    limit, beside, hi = max_bytes, list[ItemScore](), len(delta.patterns) - 1
    if reserve and whole.version == delta.version:
        final = _final_version_start(delta)
        if final > 0:
            # Earlier versions first, on pages of their own with the whole budget...
            hi = final
        else:
            # ...then the final version, cut to its top share so the list fits beside it
            # (a list over POPULAR_SHARE of the budget leaves the patterns the rest).
            beside = delta.popular[:MAX_POPULAR_PER_PULL]
            if size_of(msgspec.structs.replace(build(0), popular=beside)) > max_bytes:
                limit, beside = max_bytes - reserve, []

    def fits(count: int) -> bool:
        return size_of(msgspec.structs.replace(build(count), popular=beside)) <= limit

    lo = _largest(hi, fits)
    best = build(lo)
    if lo == 0 and size_of(best) > max_bytes:
        best = build(0, trends=False)  # trends are current-state hints; the cursor is not
    return _with_popular(best, delta, max_bytes=max_bytes, size_of=size_of)


def _largest(hi: int, fits: Callable[[int], bool]) -> int:
    """The largest count in [0, hi] that fits (0 when none does); ``fits`` is monotone."""
    lo = 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _final_version_start(delta: ReleaseDelta) -> int:
    """Index of the first pattern of the delta's last version (0 when there are none)."""
    if not delta.patterns:
        return 0
    last = delta.patterns[-1].version
    return next(i for i, p in enumerate(delta.patterns) if p.version == last)


def _popular_reserve(
    delta: ReleaseDelta,
    empty: PullResponse,
    *,
    max_bytes: int,
    size_of: Callable[[PullResponse], int],
) -> int:
    """Bytes the whole popularity list adds to an answer, capped at ``POPULAR_SHARE``."""
    popular = delta.popular[:MAX_POPULAR_PER_PULL]
    if not popular:
        return 0
    extra = size_of(msgspec.structs.replace(empty, popular=popular)) - size_of(empty)
    return max(0, min(extra, int(max_bytes * POPULAR_SHARE)))


def _with_popular(
    response: PullResponse,
    delta: ReleaseDelta,
    *,
    max_bytes: int,
    size_of: Callable[[PullResponse], int],
) -> PullResponse:
    """``response`` plus the most popular entries that still fit (on the last page only)."""
    popular = delta.popular[:MAX_POPULAR_PER_PULL]
    if not popular or response.version != delta.version:
        return response

    def build(count: int) -> PullResponse:
        return msgspec.structs.replace(response, popular=popular[:count])

    whole = build(len(popular))
    if size_of(whole) <= max_bytes:
        return whole
    lo = _largest(len(popular) - 1, lambda count: size_of(build(count)) <= max_bytes)
    return build(lo) if lo else response


class Pacer:
    """``next_sync_after`` for each sync, from the recent sync rate seen by this process."""

    def __init__(
        self,
        *,
        interval: float,
        jitter: float,
        target_per_second: float,
        clock: Clock,
        rng: random.Random | None = None,
        window: float = 10.0,
    ) -> None:
        self._interval = interval
        self._jitter = jitter
        self._target = target_per_second
        self._clock = clock
        self._rng = rng or random.Random()
        self._window = window
        self._recent: deque[float] = deque()

    def rate(self) -> float:
        """Syncs per second over the last window."""
        now = self._clock.now()
        while self._recent and self._recent[0] < now - self._window:
            self._recent.popleft()
        return len(self._recent) / self._window

    def next_after(self, *, more: bool) -> float:
        load = max(1.0, self.rate() / self._target)
        self._recent.append(self._clock.now())
        if more:
            return round(1.0 + self._rng.random(), 3)
        spread = 1.0 + self._jitter * (2.0 * self._rng.random() - 1.0)
        return round(self._interval * load * spread, 3)


def with_cowatch(
    response: PullResponse,
    rows: list[tuple[int, CowatchRow]],
    *,
    after: CowatchCursor,
    max_bytes: int,
    size_of: Callable[[PullResponse], int],
    fetched_all: bool,
) -> PullResponse:
    """``response`` plus the co-watch rows (``rows[i]`` = (version, row), in order after
    the device's cursor ``after``) that fit beside it in ``max_bytes``; the cursor moves
    to the last row sent, and ``more`` is set while rows remain. (``fetched_all``: no
    rows beyond ``rows`` exist.)"""
    base = msgspec.structs.replace(response, cowatch=CowatchPage(cursor=after))

    def build(count: int) -> PullResponse:
        if count == 0:
            return base
        version, last = rows[count - 1]
        page = CowatchPage(
            rows=[row for _, row in rows[:count]],
            cursor=CowatchCursor(version=version, source=last.source),
        )
        more = response.more or count < len(rows) or not fetched_all
        return msgspec.structs.replace(response, cowatch=page, more=more)

    count = _largest(len(rows), lambda n: size_of(build(n)) <= max_bytes)
    if count == 0 and rows:
        return msgspec.structs.replace(base, more=True)
    return build(count)
