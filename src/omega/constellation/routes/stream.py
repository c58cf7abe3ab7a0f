"""``GET /api/omega/events``: server-sent events for releases and trends.

Each event's ``id`` is its release version and its ``data`` the JSON ``ServerEvent``. A
client reconnecting with a ``Last-Event-ID`` below the current version gets a release
event for the current version at once, so a missed release is never missed for long.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

from fastapi import APIRouter, Request
from prometheus_client import Gauge
from sse_starlette import EventSourceResponse, ServerSentEvent

from omega.constellation._runtime import runtime_of
from omega.constellation.guards import VIEWER_ROUTE, Viewer
from omega.constellation.openapi import problem_responses
from omega.protocol import codec
from omega.protocol.messages import ServerEvent

__all__ = ["router"]

router = APIRouter(prefix="/api/omega", tags=["events"])


@contextlib.contextmanager
def _counted(gauge: Gauge) -> Iterator[None]:
    """One more client on ``gauge`` while open: kept as it changes, not only when this
    process is scraped (with several processes, a scrape reaches one: metrics_shared)."""
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


def _sse(event: ServerEvent) -> ServerSentEvent:
    return ServerSentEvent(
        data=codec.encode_json(event).decode(), event=event.kind, id=str(event.version)
    )


@router.get(
    "/events",
    summary="Server-sent events: `release` (new version) and `trend` events",
    response_class=EventSourceResponse,
    responses=problem_responses(*VIEWER_ROUTE),
)
async def events(request: Request, _: Viewer) -> EventSourceResponse:
    runtime = runtime_of(request)
    broker = runtime.broker
    last_seen = request.headers.get("last-event-id", "")

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async with broker.subscribe() as queue:
            with _counted(runtime.metrics.sse_clients):
                if last_seen.isdigit() and int(last_seen) < broker.version:
                    yield _sse(ServerEvent(kind="release", version=broker.version))
                while True:
                    try:
                        event = await asyncio.wait_for(queue.get(), timeout=1.0)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        continue
                    yield _sse(event)

    return EventSourceResponse(
        stream(),
        ping=runtime.settings.sse_ping_interval,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
