"""One constellation at several endpoints: the device fails over by itself.

TVs reach the service over the internet; the replicas behind it share one database, so
any of them answers any device. A balancer in front would be one more thing to fail
and needs seconds of failed health checks to drop a dead replica; a device that knows
the endpoints (replicas, or a balancer's addresses, or regions) notices a dead one in
one round trip — a refused connection — and moves on::

    transport = FailoverTransport.over_http(["https://a.omega.example", "https://b.omega.example"])
    runtime = DeviceRuntime(brain, transport)

Requests go to the current endpoint. One that cannot be reached
(:class:`~omega.errors.UnreachableError`: the request never left) is tried on the next
at once, each endpoint once per request. One sent but unanswered (reset, timed out:
the replica may have died holding it) is not resent here — a registration or a token
refresh must not be replayed blindly — but the next request goes to the next endpoint;
the sync client's own retry resends a push there, which is safe (the batch id makes it
apply once, on whichever replica). The device stays on an endpoint that works.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Self

from omega.errors import ConfigError, TransportError, UnreachableError
from omega.sync.transport import HttpTransport, Response, Transport

__all__ = ["FailoverTransport"]


class FailoverTransport:
    """A :class:`Transport` over ``transports``, one per endpoint of the same service."""

    def __init__(self, transports: Sequence[Transport], *, start: int = 0) -> None:
        if not transports:
            raise ConfigError("a failover transport needs at least one endpoint")
        self._transports = list(transports)
        #: Index of the endpoint requests go to now (``start``: the first one tried).
        self.current = start % len(self._transports)
        #: How many times the device moved to another endpoint.
        self.failovers = 0

    @classmethod
    def over_http(cls, base_urls: Sequence[str], **options: float) -> FailoverTransport:
        """An :class:`HttpTransport` per URL (``options``: its timeouts)."""
        return cls([HttpTransport(url, **options) for url in base_urls])

    async def request(
        self, method: str, path: str, *, body: bytes | None, headers: Mapping[str, str]
    ) -> Response:
        unreachable: list[str] = []
        for _ in self._transports:
            index = self.current
            try:
                return await self._transports[index].request(
                    method, path, body=body, headers=headers
                )
            except UnreachableError as exc:
                self._leave(index)
                unreachable.append(str(exc))
            except TransportError:
                self._leave(index)
                raise
        raise UnreachableError("no endpoint could be reached: " + "; ".join(unreachable))

    def _leave(self, index: int) -> None:
        """Move on from endpoint ``index``, unless a concurrent request already did."""
        if self.current == index and len(self._transports) > 1:
            self.current = (index + 1) % len(self._transports)
            self.failovers += 1

    async def aclose(self) -> None:
        for transport in self._transports:
            await transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
