"""Events on every replica's stream: PostgreSQL ``LISTEN``/``NOTIFY`` between replicas.

A server's :class:`~omega.constellation.events.EventBroker` feeds the event streams
(``/api/omega/events``) of its own process. Two kinds of event start elsewhere when
several replicas share one PostgreSQL database:

- a **release** may be committed by any replica's round or by an ``omega worker``: a
  trigger on the release version (migration 0009) sends ``NOTIFY omega_release`` when the
  commit lands, and each replica's listener has its
  :class:`~omega.constellation.events.ReleaseWatcher` read the new version and publish it;
- an operator's **announcement** reaches one replica: :meth:`PostgresEventBus.publish`
  sends the event as ``NOTIFY omega_events`` (JSON), and every replica, the sender too,
  publishes it to its own streams.

:class:`LocalEventBus` is the one-process case (SQLite): publish to the broker directly.
The watcher's poll (``release_poll_interval``) still runs beside the listener: it covers
the seconds in which the listening connection is down and being reopened.
"""

from __future__ import annotations

import logging
from typing import Protocol

import psycopg
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from tenacity import wait_exponential_jitter as backoff

from omega.constellation.events import EventBroker, ReleaseWatcher
from omega.errors import RemoteProtocolError, StoreError
from omega.protocol import codec
from omega.protocol.messages import ServerEvent

__all__ = ["EVENTS", "RELEASES", "EventBus", "LocalEventBus", "PostgresEventBus"]

log = logging.getLogger("omega.constellation")

#: The channel the migration's trigger notifies (payload: the version).
RELEASES = "omega_release"
#: The channel of announcements (payload: a ``ServerEvent`` in JSON).
EVENTS = "omega_events"


class EventBus(Protocol):
    async def publish(self, event: ServerEvent) -> None:
        """``event`` on the streams of every replica."""
        ...

    async def run(self) -> None:
        """Until cancelled: what the bus must keep doing (listening), if anything."""
        ...


class LocalEventBus:
    """One process: the broker is every replica there is."""

    def __init__(self, broker: EventBroker) -> None:
        self._broker = broker

    async def publish(self, event: ServerEvent) -> None:
        self._broker.publish(event)

    async def run(self) -> None:
        return None


class PostgresEventBus:
    """Replicas sharing the PostgreSQL database at ``dsn`` (see the module docstring)."""

    def __init__(self, dsn: str, broker: EventBroker, watcher: ReleaseWatcher) -> None:
        self._dsn, self._broker, self._watcher = dsn, broker, watcher

    async def publish(self, event: ServerEvent) -> None:
        payload = codec.encode_json(event).decode()
        try:
            async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True) as conn:
                await conn.execute("SELECT pg_notify(%s, %s)", (EVENTS, payload))
        except psycopg.Error as exc:
            raise StoreError(f"event bus: PostgreSQL: {type(exc).__name__}: {exc}") from exc

    async def run(self) -> None:
        """Listen until cancelled; reconnect (0.5 s, then longer, up to 30 s) when the
        connection drops."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(psycopg.OperationalError),
            wait=backoff(initial=0.5, max=30),
            before_sleep=_lost,
        ):
            with attempt:
                await self._listen()

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True) as conn:
            await conn.execute(f"LISTEN {RELEASES}")
            await conn.execute(f"LISTEN {EVENTS}")
            await self._watcher.check()  # whatever was committed while nobody listened
            async for note in conn.notifies():
                if note.channel == RELEASES:
                    await self._watcher.check()
                else:
                    self._relay(note.payload)
        raise psycopg.OperationalError("the notification stream ended")

    def _relay(self, payload: str) -> None:
        try:
            event = codec.decode_json(payload.encode(), expect=ServerEvent)
        except RemoteProtocolError as exc:  # not ours: someone else NOTIFYs the channel
            log.warning("ignored a notification on %s that is no event: %s", EVENTS, exc)
            return
        self._broker.publish(event)


def _lost(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    log.warning("event bus lost PostgreSQL (%s); reconnecting", error)
