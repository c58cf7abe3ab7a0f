"""Prometheus metrics, one registry per app (no import-time globals).

``MetricsMiddleware`` labels requests by route *template* (``/api/omega/viewers/{viewer_id}``),
never by raw path, so a viewer id cannot explode the label set.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omega.protocol.messages import FrequencyReport

__all__ = ["Metrics", "MetricsMiddleware"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "omega_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "omega_http_request_duration_seconds",
            "Time to answer, by route.",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.syncs = Counter("omega_syncs", "Completed syncs.", registry=self.registry)
        self.patterns_ingested = Counter(
            "omega_patterns_ingested",
            "Patterns and removals accepted from pushes (first delivery only).",
            registry=self.registry,
        )
        self.patterns_rejected = Counter(
            "omega_patterns_rejected",
            "Patterns rejected in push acks.",
            registry=self.registry,
        )
        self.rejections = Counter(
            "omega_rejections",
            "Requests refused, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.release_version = Gauge(
            "omega_release_version", "Latest release version seen.", registry=self.registry
        )
        self.rounds = Counter(
            "omega_federation_rounds", "In-process federation rounds run.", registry=self.registry
        )
        self.sse_clients = Gauge(
            "omega_sse_clients", "Connected event-stream clients.", registry=self.registry
        )

        self.reports = Counter(
            "omega_popularity_reports",
            "Popularity reports accepted from pushes (first delivery), by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.report_epsilon = Counter(
            "omega_popularity_report_epsilon",
            "Privacy budget (ε) spent by the accepted local-DP popularity reports, summed.",
            registry=self.registry,
        )

    def count_reports(self, reports: Sequence[FrequencyReport], shares: int) -> None:
        """Count a push's popularity reports: local-DP ones with their ε, two-server ones."""
        if reports:
            self.reports.labels("olh").inc(len(reports))
            self.report_epsilon.inc(sum(report.epsilon for report in reports))
        if shares:
            self.reports.labels("two_server").inc(shares)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
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
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            method = str(scope.get("method", ""))
            self._metrics.requests.labels(template, method, str(status)).inc()
            self._metrics.latency.labels(template, method).observe(time.perf_counter() - started)
            if status == 429:
                self._metrics.rejections.labels("rate_limited").inc()
            elif status == 413:
                self._metrics.rejections.labels("too_large").inc()
            elif status in (401, 403):
                self._metrics.rejections.labels("auth").inc()
            elif status in (400, 415, 422):
                self._metrics.rejections.labels("bad_request").inc()
