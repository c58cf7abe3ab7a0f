"""Server-sent events: every connected device hears about new releases and trend changes.

The ``EventBroker`` fans events out to one bounded queue per subscriber (a slow client
loses its oldest events, never blocks the others). The ``ReleaseWatcher`` notices new
versions — committed by the in-process round or by an ``omega worker`` elsewhere — and
publishes one ``release`` event per new version plus ``trend`` events for its top trends.
The event ``id`` is the release version, so a reconnecting client's ``Last-Event-ID``
tells the server whether it missed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from anyio import to_thread

from omega.protocol.messages import ServerEvent
from omega.storage.base import Storage

__all__ = ["EventBroker", "ReleaseWatcher"]

log = logging.getLogger("omega.constellation")

_QUEUE_SIZE = 64
_TRENDS_PER_RELEASE = 5


class EventBroker:
    """In-process publish/subscribe of ``ServerEvent``s."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[ServerEvent]] = set()
        self.version = 0

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[ServerEvent]]:
        queue: asyncio.Queue[ServerEvent] = asyncio.Queue(maxsize=_QUEUE_SIZE)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    def publish(self, event: ServerEvent) -> None:
        if event.kind == "release":
            self.version = max(self.version, event.version)
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()  # drop the oldest for this slow client only
            queue.put_nowait(event)


class ReleaseWatcher:
    """Polls storage for a new release version and publishes it."""

    def __init__(
        self,
        storage: Storage,
        broker: EventBroker,
        *,
        interval: float,
        on_version: Callable[[int], None] | None = None,
    ) -> None:
        self._storage = storage
        self._broker = broker
        self._interval = interval
        self._on_version = on_version
        self._lock = asyncio.Lock()

    async def check(self) -> int:
        """Publish events if the stored version moved; return the current version."""
        async with self._lock:
            stats = await to_thread.run_sync(self._storage.stats)
            if stats.version < self._broker.version:
                # The store was restored or replaced: its versions are the truth (pulls
                # keyed on the old, higher one would never see the releases to come).
                log.warning(
                    "release version went back from %d to %d: store restored or replaced?",
                    self._broker.version,
                    stats.version,
                )
                self._broker.version = stats.version
                if self._on_version is not None:
                    self._on_version(stats.version)
            if stats.version <= self._broker.version:
                return self._broker.version
            trends = await to_thread.run_sync(self._storage.current_trends)
            self._broker.publish(
                ServerEvent(
                    kind="release",
                    version=stats.version,
                    data={"released_patterns": stats.released_patterns},
                )
            )
            top = sorted(trends, key=lambda t: t.score, reverse=True)
            for trend in top[:_TRENDS_PER_RELEASE]:
                self._broker.publish(
                    ServerEvent(
                        kind="trend",
                        version=stats.version,
                        data={"cell": trend.cell, "region": trend.region, "score": trend.score},
                    )
                )
            if self._on_version is not None:
                self._on_version(stats.version)
            return stats.version

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # keep watching: a blip in storage must not end the events
                log.exception("release watcher could not read the current version")
            await asyncio.sleep(self._interval)
