"""Prometheus metrics, one registry per app (no import-time globals).

``MetricsMiddleware`` labels requests by route *template* (``/api/omega/viewers/{viewer_id}``),
never by raw path, so a viewer id cannot explode the label set. Every label here takes a
small fixed set of values (routes, methods, status codes, reasons, kinds); docs/deploy.md
lists the metrics and what they mean.

What a scrape reads from the running server rather than counts as it goes (devices,
storage connections, the helper's health) is refreshed by ``omega.constellation.scrape``
just before rendering, so a sync pays for none of it. Each gauge says how several
processes' values combine (``multiprocess_mode``: ``omega.constellation.metrics_shared``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omega.protocol.messages import FrequencyReport

__all__ = ["LATENCY_BUCKETS", "METHODS", "SYNC_PATHS", "Metrics", "MetricsMiddleware"]

#: Request latency buckets (seconds): every 10 ms from 10 to 60 so that p95 is read
#: within a few ms of the 50 ms target, coarser on both sides.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.03,
    0.04,
    0.05,
    0.06,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
#: A federation round takes from a fraction of a second to minutes.
ROUND_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
#: The routes whose body bytes are counted as sync traffic (no path parameters, so the
#: raw path is the template).
SYNC_PATHS = frozenset({"/api/omega/sync", "/api/omega/patterns"})
#: The rate limits (``omega.constellation.guards``), round outcomes (``RoundStatus``, and
#: ``failed`` when a round raised) and popularity report kinds: each label's values.
LIMITS = ("viewer", "registration", "manufacturer")
ROUND_STATUSES = ("released", "unchanged", "no_codebook", "conflict", "failed")
REPORT_KINDS = ("olh", "shared")
#: The methods a request is labelled with; any other (HTTP/3 and h11 pass a client's
#: made-up method through) is ``other``, so a client cannot grow the label set.
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
#: The reasons a request is refused, by status (anything else is not a rejection).
_REJECTED = {429: "rate_limited", 413: "too_large", 401: "auth", 403: "auth"}
_REJECTED.update(dict.fromkeys((400, 415, 422), "bad_request"))


class Metrics:
    """The constellation's metrics. ``helper``: whether a helper is configured (its
    gauge is exported only then, so a one-server install has no helper to alert on)."""

    def __init__(self, *, helper: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._traffic()
        self._federation()
        self._fleet()
        self.helper_up = (
            Gauge(
                "omega_helper_up",
                "1 if the helper answered its last health probe (at the last scrape), else 0.",
                registry=self.registry,
                multiprocess_mode="mostrecent",
            )
            if helper
            else None
        )
        self.helper_probe_failures = Counter(
            "omega_helper_probe_failures",
            "Health probes of the helper that failed (unreachable, timed out or not 200).",
            registry=self.registry,
        )
        # Every known label value from the start, at 0: a rate over a series that
        # appears only with its first event misses that event, and a panel shows nothing.
        for counter, values in (
            (self.rejections, {*_REJECTED.values(), "report_kind"}),
            (self.rate_limited, LIMITS),
            (self.rounds, ROUND_STATUSES),
            (self.reports, REPORT_KINDS),
            (self.report_epsilon, REPORT_KINDS),
        ):
            for value in values:
                counter.labels(value)
        # The report counters' children by kind, kept: ``labels()`` takes a lock and builds
        # its key at every call, and a push with reports made two such calls.
        self._reports_by_kind = {
            kind: (self.reports.labels(kind), self.report_epsilon.labels(kind))
            for kind in REPORT_KINDS
        }

    def _traffic(self) -> None:
        r = self.registry
        self.requests = Counter(
            "omega_http_requests",
            "HTTP requests by route, method and status (every door: HTTP, gRPC, HTTP/3).",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "omega_http_request_duration_seconds",
            "Time to answer, by route.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.syncs = Counter("omega_syncs", "Completed syncs.", registry=r)
        self.sync_received_bytes = Counter(
            "omega_sync_received_bytes",
            "Request body bytes received on /api/omega/sync and /api/omega/patterns (pushes).",
            registry=r,
        )
        self.sync_sent_bytes = Counter(
            "omega_sync_sent_bytes",
            "Answer body bytes sent on /api/omega/sync and /api/omega/patterns (pulls, acks).",
            registry=r,
        )
        self.rejections = Counter(
            "omega_rejections", "Requests refused, by reason.", ["reason"], registry=r
        )
        self.rate_limited = Counter(
            "omega_rate_limited_requests",
            "Requests refused with 429, by the limit they hit (viewer, registration, "
            "manufacturer).",
            ["limit"],
            registry=r,
        )
        self.sse_clients = Gauge(
            "omega_sse_clients",
            "Connected event-stream clients.",
            registry=r,
            multiprocess_mode="livesum",
        )

    def _federation(self) -> None:
        r = self.registry
        self.patterns_ingested = Counter(
            "omega_patterns_ingested",
            "Patterns and removals accepted from pushes (first delivery only).",
            registry=r,
        )
        self.patterns_rejected = Counter(
            "omega_patterns_rejected", "Patterns rejected in push acks.", registry=r
        )
        self.release_version = Gauge(
            "omega_release_version",
            "Latest release version seen.",
            registry=r,
            multiprocess_mode="max",
        )
        self.release_seen = Gauge(
            "omega_release_seen_timestamp_seconds",
            "When this process saw the release version last change (or started, if later).",
            registry=r,
            multiprocess_mode="max",
        )
        self.release_seen.set(time.time())
        self.rounds = Counter(
            "omega_federation_rounds",
            "Federation rounds this server ran, by status (released, unchanged, no_codebook, "
            "conflict, failed).",
            ["status"],
            registry=r,
        )
        self.round_duration = Histogram(
            "omega_federation_round_duration_seconds",
            "Wall time of the federation rounds this server ran (failed ones included).",
            buckets=ROUND_BUCKETS,
            registry=r,
        )
        self.rounds_since_release = Gauge(
            "omega_federation_rounds_since_release",
            "Rounds this server ran since the last one that released (0 right after one).",
            registry=r,
            multiprocess_mode="max",  # inc()'d: "mostrecent" would refuse it
        )
        self.cowatch_failures = Counter(
            "omega_cowatch_failures",
            "Rounds this server ran whose co-watch step stopped on a storage error (a batch "
            "not folded or a private release not made); the next round retries it.",
            registry=r,
        )
        self.reports = Counter(
            "omega_reports_received",
            "Popularity reports accepted from pushes, by kind (olh, shared).",
            ["kind"],
            registry=r,
        )
        self.report_epsilon = Counter(
            "omega_report_epsilon_spent",
            "Privacy budget (ε) the accepted reports cost the devices that sent them, by kind.",
            ["kind"],
            registry=r,
        )

    def _fleet(self) -> None:
        r = self.registry
        self.storage_up = Gauge(
            "omega_storage_up",
            "1 if storage answered at the last scrape, else 0.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.registered_devices = Gauge(
            "omega_registered_devices",
            "Viewers (devices) in the registry.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.active_devices = Gauge(
            "omega_active_devices",
            "Viewers that made an authenticated request to this process within rate_window.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.live_patterns = Gauge(
            "omega_live_patterns",
            "Contributed patterns live for the next round.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.released_patterns = Gauge(
            "omega_released_patterns",
            "Patterns in the current release.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.pending_contributions = Gauge(
            "omega_pending_contributions",
            "Pushed contributions waiting for a round to apply them.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.db_pool_size = Gauge(
            "omega_db_pool_size",
            "Storage connections this process may hold at most (one per worker thread).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.db_pool_connections = Gauge(
            "omega_db_pool_connections",
            "Storage connections open.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.db_pool_in_use = Gauge(
            "omega_db_pool_in_use",
            "Storage connections inside a transaction now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.db_write_queue = Gauge(
            "omega_db_write_queue_length",
            "Writes waiting for SQLite's writer thread (0 with PostgreSQL).",
            registry=r,
            multiprocess_mode="livesum",
        )

    # -- what the parts report ------------------------------------------------------------
    def release_changed(self, version: int) -> None:
        """The release watcher saw ``version`` become current."""
        self.release_version.set(version)
        self.release_seen.set(time.time())

    def round_finished(self, status: str, seconds: float) -> None:
        """A round this server ran ended with ``status`` (``failed`` if it raised)."""
        self.rounds.labels(status).inc()
        self.round_duration.observe(seconds)
        if status == "released":
            self.rounds_since_release.set(0)
        else:
            self.rounds_since_release.inc()

    def reports_accepted(
        self, olh: Sequence[FrequencyReport], shared: int, *, shared_epsilon: float
    ) -> None:
        """A push's reports were stored: ``olh`` carry their ε, ``shared`` ones cost
        ``shared_epsilon`` each."""
        if olh:
            count, epsilon = self._reports_by_kind["olh"]
            count.inc(len(olh))
            epsilon.inc(sum(r.epsilon for r in olh))
        if shared:
            count, epsilon = self._reports_by_kind["shared"]
            count.inc(shared)
            epsilon.inc(shared * shared_epsilon)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics
        # The request counter's and latency histogram's children by (route, method,
        # status): ``labels()`` takes a lock and builds its key at every call (~3 µs a
        # request). The labels take a small fixed set of values (module docstring).
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        if scope["path"] in SYNC_PATHS:
            await self._counted(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, send_wrapper)
        finally:
            self._observe(scope, status, started)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A sync route: as above, also counting the body bytes each way."""
        started = time.perf_counter()
        status = 500
        received = sent = 0

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
            else:
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self._app(scope, receive_wrapper, send_wrapper)
        finally:
            self._metrics.sync_received_bytes.inc(received)
            self._metrics.sync_sent_bytes.inc(sent)
            self._observe(scope, status, started)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "<unmatched>"
        method = scope.get("method", "")
        if method not in METHODS:
            method = "other"
        key = (template, method, status)
        children = self._children.get(key)
        if children is None:
            metrics = self._metrics
            children = self._children[key] = (
                metrics.requests.labels(template, method, str(status)),
                metrics.latency.labels(template, method),
            )
        children[0].inc()
        children[1].observe(time.perf_counter() - started)
        reason = _REJECTED.get(status)
        if reason is not None:
            self._metrics.rejections.labels(reason).inc()
