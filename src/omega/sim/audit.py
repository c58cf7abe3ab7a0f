"""The privacy audit: every message a simulated TV sends is opened and inspected.

The audit reads the raw frame generically (not through the typed schema, which would
drop unknown fields) and walks every key and value, so anything smuggled into a push —
an item id, a title, a search string, an event-like record — is counted.

Popularity reports (OLH) are integers only — a seed, a bucket, a bucket count and ε —
so they can name no title; the audit counts them, the ε they used, and what they compose
to per viewer (the sum of the ε of the distinct reports each TV sent: a retried push
resends the same report, which costs nothing more).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import zstandard

from omega.errors import RemoteProtocolError
from omega.protocol.codec import BINARY_MEDIA_TYPE, FLAG_ZSTD, FRAME_HEADER
from omega.protocol.codec import payload as frame_payload
from omega.protocol.messages import PROTOCOL_VERSION
from omega.sync.transport import Response, Transport

__all__ = ["AuditingTransport", "PrivacyAudit"]

#: Keys that would mean a raw event record left the device.
_EVENT_KEYS = frozenset(
    {
        "item_id",
        "item",
        "items",
        "title",
        "timestamp",
        "ts",
        "rating",
        "stars",
        "query",
        "watch_fraction",
        "fraction",
        "history",
        "episodes",
        "duration",
    }
)
_MAX_AUDIT_BYTES = 8 << 20


def _generic(body: bytes) -> Any:
    """The msgpack inside a frame, read leniently: what left the device counts even when
    the frame is damaged or of another version (the server would refuse it, but the bytes
    were sent)."""
    try:
        flags, payload = frame_payload(body)
    except RemoteProtocolError:
        if len(body) < 2:
            return None
        header = FRAME_HEADER if body[0] == PROTOCOL_VERSION else 2
        flags, payload = body[1], body[header:]
    if flags & FLAG_ZSTD:
        reader = zstandard.ZstdDecompressor().stream_reader(payload)
        payload = reader.read(_MAX_AUDIT_BYTES)
    return msgspec.msgpack.decode(payload)


@dataclass(slots=True)
class PrivacyAudit:
    """Counts what crossed the wire from devices to the constellation."""

    item_ids: frozenset[str]
    titles: frozenset[str]
    searches: set[str] = field(default_factory=set)
    requests: int = 0
    pushes: int = 0
    patterns_sent: int = 0
    raw_items_sent: int = 0
    event_records_sent: int = 0
    search_strings_sent: int = 0
    frequency_reports_sent: int = 0
    report_epsilons: set[float] = field(default_factory=set)
    #: Two-server reports (``omega.protocol.shares``) and what each costs a viewer's
    #: budget (they carry no ε: the servers' noise is configured, not sent).
    shared_reports_sent: int = 0
    shared_epsilon: float = 0.0
    #: Per viewer: the reports seen (by OLH seed or DPF correction words: a retry repeats
    #: one) and their ε summed.
    report_seeds: dict[str, set[object]] = field(default_factory=dict)
    epsilon_spent: dict[str, float] = field(default_factory=dict)
    push_bytes: list[int] = field(default_factory=list)
    pull_bytes: list[int] = field(default_factory=list)

    @classmethod
    def for_catalog(
        cls, item_ids: Iterable[str], titles: Iterable[str], *, shared_epsilon: float = 0.0
    ) -> PrivacyAudit:
        return cls(
            frozenset(item_ids),
            frozenset(t.casefold() for t in titles),
            shared_epsilon=shared_epsilon,
        )

    def inspect(self, body: bytes, *, viewer: str = "") -> None:
        self.requests += 1
        message = _generic(body)
        push = message.get("push") if isinstance(message, dict) else None
        if isinstance(message, dict) and message.get("msg") == "push":
            push = message
        if isinstance(push, dict):
            self.pushes += 1
            self.patterns_sent += len(push.get("added", ())) + len(push.get("updated", ()))
            reports = push.get("reports", ())
            if isinstance(reports, list):
                self.frequency_reports_sent += len(reports)
                for report in reports:
                    if isinstance(report, dict) and "epsilon" in report:
                        epsilon = float(report["epsilon"])
                        self.report_epsilons.add(epsilon)
                        self._spend(viewer, epsilon, report.get("seed"))
            shares = push.get("shares", ())
            if isinstance(shares, list):
                self.shared_reports_sent += len(shares)
                for share in shares:
                    if isinstance(share, dict):
                        self._spend(viewer, self.shared_epsilon, share.get("public"))
        self._walk(message)

    def _spend(self, viewer: str, epsilon: float, key: object) -> None:
        seen = self.report_seeds.setdefault(viewer, set())
        if isinstance(key, (int, bytes)):
            if key in seen:
                return
            seen.add(key)
        self.epsilon_spent[viewer] = self.epsilon_spent.get(viewer, 0.0) + epsilon

    def _walk(self, value: Any) -> None:
        if isinstance(value, str):
            if value in self.item_ids or value.casefold() in self.titles:
                self.raw_items_sent += 1
            elif value in self.searches:
                self.search_strings_sent += 1
        elif isinstance(value, Mapping):
            if _EVENT_KEYS & {str(k) for k in value}:
                self.event_records_sent += 1
            for key, item in value.items():
                self._walk(key)
                self._walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                self._walk(item)

    def summary(self) -> dict[str, Any]:
        def stat(values: list[int], q: float) -> float:
            return float(np.percentile(values, q)) if values else 0.0

        spent = list(self.epsilon_spent.values())

        return {
            "requests_inspected": self.requests,
            "pushes": self.pushes,
            "patterns_sent": self.patterns_sent,
            "raw_items_sent": self.raw_items_sent,
            "event_records_sent": self.event_records_sent,
            "search_strings_sent": self.search_strings_sent,
            "frequency_reports_sent": self.frequency_reports_sent,
            "report_epsilon": max(self.report_epsilons, default=0.0),
            "shared_reports_sent": self.shared_reports_sent,
            "shared_epsilon": self.shared_epsilon if self.shared_reports_sent else 0.0,
            # Basic composition over each viewer's distinct reports (viewers who sent none
            # are not counted).
            "epsilon_per_viewer_median": float(np.median(spent)) if spent else 0.0,
            "epsilon_per_viewer_max": max(spent, default=0.0),
            "push_bytes_median": stat(self.push_bytes, 50),
            "push_bytes_p95": stat(self.push_bytes, 95),
            "pull_bytes_median": stat(self.pull_bytes, 50),
            "pull_bytes_p95": stat(self.pull_bytes, 95),
        }


class AuditingTransport:
    """A transport that lets the audit read every request body before it is sent."""

    def __init__(self, inner: Transport, audit: PrivacyAudit, *, viewer: str = "") -> None:
        self.inner = inner
        self.audit = audit
        self.viewer = viewer

    async def request(
        self, method: str, path: str, *, body: bytes | None, headers: Mapping[str, str]
    ) -> Response:
        kind = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if body and kind.startswith(BINARY_MEDIA_TYPE):
            self.audit.inspect(body, viewer=self.viewer)
        return await self.inner.request(method, path, body=body, headers=headers)

    async def aclose(self) -> None:
        """The inner transport is shared by the fleet; whoever opened it closes it."""
