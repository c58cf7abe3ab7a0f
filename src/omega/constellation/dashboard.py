"""The dashboard's time series: a sampler that reads the server's own counters into a
bounded ring buffer, and the history of the rounds this server ran.

Every ``interval`` seconds the ``Sampler`` reads the Prometheus registry (syncs, request
statuses, the sync routes' latency histogram, popularity reports and their ε), the
``Traffic`` totals (sync bytes, active viewers) and the store's counts, and appends one
``Sample`` of rates over the interval since the last one. The buffer keeps the newest
``capacity`` samples (an hour at the default 5 s). Latency quantiles are interpolated
within histogram buckets as Prometheus' ``histogram_quantile`` does, from the requests
of that interval only; an interval without sync requests has none (null).

Nothing here is invented: a sample is what the counters said, and the first sample after
start has no rates (there is no interval before it).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry

from omega.clock import Clock
from omega.constellation.traffic import PULL_ROUTES, PUSH_ROUTES, Traffic
from omega.storage.base import StorageStats

__all__ = [
    "ACTIVE_WINDOW_S",
    "Counters",
    "Dashboard",
    "RoundLog",
    "RoundRecord",
    "Sample",
    "Sampler",
    "Sessions",
    "quantile",
    "read_counters",
    "run_sampler",
    "sample_of",
]

log = logging.getLogger("omega.constellation")

#: A viewer counts as active while it synced within this many seconds.
ACTIVE_WINDOW_S = 300.0
_SYNC_ROUTES = frozenset(PUSH_ROUTES | PULL_ROUTES)


class Sample(msgspec.Struct, frozen=True, kw_only=True):
    """One point of the over-time panels. Rates are per second over the interval that
    ends at ``t`` (null on the first sample); ``p50_ms``/``p95_ms`` are the sync routes'
    latency over that interval (null when none answered)."""

    t: float
    devices: int
    active: int
    version: int
    live_patterns: int
    pending: int
    syncs_per_s: float | None
    p50_ms: float | None
    p95_ms: float | None
    push_bytes_per_s: float | None
    pull_bytes_per_s: float | None
    errors_per_s: float | None
    rate_limited_per_s: float | None
    rejected_per_s: float | None
    reports_per_s: float | None
    epsilon_per_s: float | None


@dataclass(frozen=True, slots=True)
class Counters:
    """Cumulative counter values at one moment (what a sample is a difference of)."""

    syncs: float = 0.0
    errors: float = 0.0
    rate_limited: float = 0.0
    rejected: float = 0.0
    reports: float = 0.0
    epsilon: float = 0.0
    push_bytes: int = 0
    pull_bytes: int = 0
    #: The sync routes' latency histogram: cumulative count per upper bound (seconds).
    buckets: tuple[tuple[float, float], ...] = ()


def read_counters(registry: CollectorRegistry, traffic: Traffic) -> Counters:
    """The registry's and ``traffic``'s totals now."""
    totals: dict[str, float] = {}
    buckets: dict[float, float] = {}
    for metric in registry.collect():
        for s in metric.samples:
            _tally(s.name, s.labels, s.value, totals, buckets)
    return Counters(
        syncs=totals.get("syncs", 0.0),
        errors=totals.get("errors", 0.0),
        rate_limited=totals.get("rate_limited", 0.0),
        rejected=totals.get("rejected", 0.0),
        reports=totals.get("reports", 0.0),
        epsilon=totals.get("epsilon", 0.0),
        push_bytes=traffic.push_bytes,
        pull_bytes=traffic.pull_bytes,
        buckets=tuple(sorted(buckets.items())),
    )


def _tally(
    name: str,
    labels: dict[str, str],
    value: float,
    totals: dict[str, float],
    buckets: dict[float, float],
) -> None:
    def add(key: str) -> None:
        totals[key] = totals.get(key, 0.0) + value

    if name == "omega_syncs_total":
        add("syncs")
    elif name == "omega_reports_received_total":
        add("reports")
    elif name == "omega_report_epsilon_spent_total":
        add("epsilon")
    elif name == "omega_http_requests_total":
        status = labels.get("status", "")
        if status.startswith("5"):
            add("errors")
        elif status == "429":
            add("rate_limited")
        elif status.startswith("4"):
            add("rejected")
    elif name == "omega_http_request_duration_seconds_bucket" and (
        (labels.get("method", ""), labels.get("route", "")) in _SYNC_ROUTES
    ):
        bound = float(labels["le"])
        buckets[bound] = buckets.get(bound, 0.0) + value


def quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a cumulative histogram (upper bound, count), interpolated
    linearly within its bucket; the largest finite bound if it falls in ``+Inf``; None
    when the histogram is empty."""
    points = sorted(buckets)
    if not points or points[-1][1] <= 0:
        return None
    rank = q * points[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in points:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def _delta_buckets(
    now: tuple[tuple[float, float], ...], before: tuple[tuple[float, float], ...]
) -> list[tuple[float, float]]:
    earlier = dict(before)
    return [(bound, count - earlier.get(bound, 0.0)) for bound, count in now]


def sample_of(
    t: float,
    stats: StorageStats,
    active: int,
    now: Counters,
    before: Counters | None,
    dt: float,
) -> Sample:
    """The sample at ``t``: ``stats`` and ``active`` as they are, rates from ``before``
    (``dt`` seconds earlier) to ``now``."""

    def rate(value: float, earlier: float) -> float | None:
        return None if before is None or dt <= 0 else max(value - earlier, 0.0) / dt

    b = before or Counters()
    window = _delta_buckets(now.buckets, b.buckets) if before is not None else []
    p50, p95 = quantile(0.5, window), quantile(0.95, window)
    return Sample(
        t=t,
        devices=stats.viewers,
        active=active,
        version=stats.version,
        live_patterns=stats.live_patterns,
        pending=stats.pending_contributions,
        syncs_per_s=rate(now.syncs, b.syncs),
        p50_ms=None if p50 is None else p50 * 1000.0,
        p95_ms=None if p95 is None else p95 * 1000.0,
        push_bytes_per_s=rate(now.push_bytes, b.push_bytes),
        pull_bytes_per_s=rate(now.pull_bytes, b.pull_bytes),
        errors_per_s=rate(now.errors, b.errors),
        rate_limited_per_s=rate(now.rate_limited, b.rate_limited),
        rejected_per_s=rate(now.rejected, b.rejected),
        reports_per_s=rate(now.reports, b.reports),
        epsilon_per_s=rate(now.epsilon, b.epsilon),
    )


@dataclass(slots=True)
class Sampler:
    """Appends a ``Sample`` every ``interval`` seconds to a ring of ``capacity``."""

    registry: CollectorRegistry
    traffic: Traffic
    interval: float
    capacity: int = 720
    samples: deque[Sample] = field(init=False)
    _last: tuple[float, Counters] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.samples = deque(maxlen=self.capacity)

    def take(self, t: float, stats: StorageStats) -> Sample:
        """Sample now (``t`` on the server's clock, ``stats`` just read from the store)."""
        counters = read_counters(self.registry, self.traffic)
        before, dt = (None, 0.0) if self._last is None else (self._last[1], t - self._last[0])
        sample = sample_of(t, stats, self.traffic.active(ACTIVE_WINDOW_S), counters, before, dt)
        self._last = (t, counters)
        self.samples.append(sample)
        return sample

    def counters(self) -> Counters:
        """The totals now (the dashboard's running sums)."""
        return read_counters(self.registry, self.traffic)


@dataclass(frozen=True, slots=True)
class RoundRecord:
    """One round this server ran: when it ended, how long it took, what it released (and
    how many trends), why clusters were withheld (``stats``: ``ConsolidationStats`` as a
    mapping, or None when the round stopped before consolidating)."""

    at: float
    version: int
    status: str
    seconds: float
    live: int
    released: int
    reports: int
    trends: int
    stats: dict[str, Any] | None

    @property
    def patterns_per_s(self) -> float:
        return self.live / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class RoundLog:
    """The last ``capacity`` rounds (a ``RoundRunner`` observer)."""

    clock: Clock
    capacity: int = 200
    rounds: deque[RoundRecord] = field(init=False)

    def __post_init__(self) -> None:
        self.rounds = deque(maxlen=self.capacity)

    def record(self, outcome: dict[str, Any]) -> None:
        result = outcome.get("result")
        if not isinstance(result, dict):
            return
        stats = result.get("stats")
        self.rounds.append(
            RoundRecord(
                at=self.clock.now(),
                version=int(outcome.get("version", 0)),
                status=str(result.get("status", "")),
                seconds=float(result.get("seconds", 0.0)),
                live=int(result.get("live", 0)),
                released=int(result.get("released", 0)),
                reports=int(result.get("reports", 0)),
                trends=int(result.get("trends", 0)),
                stats=stats if isinstance(stats, dict) else None,
            )
        )


async def run_sampler(
    sampler: Sampler, read: Callable[[], Awaitable[StorageStats]], clock: Clock
) -> None:
    """Sample every ``sampler.interval`` seconds until cancelled: ``read()`` awaits the
    store's stats; samples are stamped with ``clock``. A store that fails one read costs that
    sample, not the loop."""
    while True:
        try:
            stats = await read()
            sampler.take(clock.now(), stats)
        except Exception:  # the next sample may succeed; the server must keep serving
            log.exception("dashboard sample failed")
        await asyncio.sleep(sampler.interval)


@dataclass(slots=True)
class Sessions:
    """Dashboard logins: random session ids, each valid for ``ttl`` seconds (kept in
    memory: a restart logs everyone out; at most ``capacity``, the oldest dropped)."""

    clock: Clock
    ttl: float = 12 * 3600.0
    capacity: int = 1000
    _expiry: dict[str, float] = field(default_factory=dict)

    def open(self) -> str:
        session = secrets.token_urlsafe(32)
        self._expiry[session] = self.clock.now() + self.ttl
        while len(self._expiry) > self.capacity:
            del self._expiry[next(iter(self._expiry))]
        return session

    def valid(self, session: str | None) -> bool:
        if not session:
            return False
        expiry = self._expiry.get(session)
        if expiry is None:
            return False
        if self.clock.now() > expiry:
            del self._expiry[session]
            return False
        return True

    def close(self, session: str | None) -> None:
        if session:
            self._expiry.pop(session, None)


@dataclass(slots=True)
class Dashboard:
    """The dashboard's parts, built by the app's lifespan (``app.state.dashboard``)."""

    traffic: Traffic
    sampler: Sampler
    rounds: RoundLog
    sessions: Sessions
