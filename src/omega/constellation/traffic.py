"""What devices send and receive, for the dashboard: sync bytes each way and who is active.

``TrafficMiddleware`` sits beside ``MetricsMiddleware`` and counts the bytes of the sync
routes' bodies as they pass (a ``/sync`` request carries the push and its answer the
pull; ``POST /patterns`` is a push, ``GET /patterns`` a pull), and notes the viewer a
request was authenticated as (``require_viewer`` leaves it in the request's state).
Every door reaches the app through ASGI, so gRPC and HTTP/3 syncs count too.

``Traffic`` keeps running totals and, for each viewer seen, when it was last seen; the
dashboard's sampler reads both and forgets viewers quiet for longer than its window, so
the map holds at most the viewers active within one window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omega.clock import Clock

__all__ = ["PULL_ROUTES", "PUSH_ROUTES", "Traffic", "TrafficMiddleware"]

#: (method, route template) whose request body is a push, and whose answer is a pull.
PUSH_ROUTES = frozenset({("POST", "/api/omega/sync"), ("POST", "/api/omega/patterns")})
PULL_ROUTES = frozenset({("POST", "/api/omega/sync"), ("GET", "/api/omega/patterns")})


@dataclass(slots=True)
class Traffic:
    """Running totals of sync bytes, and the last time each viewer was seen."""

    clock: Clock
    push_bytes: int = 0
    pull_bytes: int = 0
    last_seen: dict[str, float] = field(default_factory=dict)

    def seen(self, viewer_id: str) -> None:
        self.last_seen[viewer_id] = self.clock.now()

    def active(self, window: float) -> int:
        """Viewers seen within ``window`` seconds; forgets the others."""
        cutoff = self.clock.now() - window
        quiet = [viewer for viewer, at in self.last_seen.items() if at < cutoff]
        for viewer in quiet:
            del self.last_seen[viewer]
        return len(self.last_seen)


class TrafficMiddleware:
    def __init__(self, app: ASGIApp, *, traffic: Traffic) -> None:
        self._app = app
        self._traffic = traffic

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        received = sent = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal sent
            if message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self._app(scope, counting_receive, counting_send)
        finally:
            self._count(scope, received, sent)

    def _count(self, scope: Scope, received: int, sent: int) -> None:
        route = scope.get("route")
        key = (str(scope.get("method", "")), str(getattr(route, "path", "")))
        if key in PUSH_ROUTES:
            self._traffic.push_bytes += received
        if key in PULL_ROUTES:
            self._traffic.pull_bytes += sent
        viewer = scope.get("state", {}).get("viewer_id")
        if isinstance(viewer, str):
            self._traffic.seen(viewer)
