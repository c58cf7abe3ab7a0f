"""How the load generator's fleet reaches the server: one lane per connection group, over
the door the run measures (``LoadConfig.transport``): aiohttp for HTTP/1.1, a few QUIC
connections for HTTP/3, StreamSync streams for gRPC (``_grpc_lane``); and what counts the
fleet's bytes on the wire."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import aiohttp
from cryptography import x509

from omega.bench._wire import WireMeter, WireSnapshot
from omega.errors import TransportError
from omega.protocol.quic import spki_pin
from omega.sync.h3_transport import Http3Transport

if TYPE_CHECKING:
    from omega.bench.loadgen import LoadConfig

__all__ = ["Lane", "LaneFailure", "LaneOpener", "WireSource", "open_lanes", "wire_meter"]

_CONNECTIONS_PER_LANE = 4
_STREAMS_PER_QUIC = 16  # requests in flight on one QUIC connection of the fleet


class LaneFailure(Exception):
    """No answer came on a lane; ``kind`` is how the step reports it ("timeout", …)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class Lane(Protocol):
    """One connection group of the fleet, over one door (HTTP/1.1, gRPC or HTTP/3).

    Requests wait in ``gate`` (FIFO) rather than in the transport's own queue, so the
    time they queue in the client is measured apart from the time the server takes.
    """

    gate: asyncio.Semaphore

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """The answer's status and body; LaneFailure if none came."""
        ...


@dataclass(slots=True)
class _HttpLane:
    """One small aiohttp session and the queue in front of it.

    The load generator shares the 2 cores with the server it measures, so its cost per
    request matters: at 400 syncs/s it used 21–31 % of a core on aiohttp against 56–61 %
    on httpx, CPU the server now gets. Devices are
    spread over several sessions with a few keep-alive connections each.
    """

    client: aiohttp.ClientSession
    gate: asyncio.Semaphore

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        try:
            async with self.client.post(path, data=body, headers=dict(headers)) as answer:
                return answer.status, await answer.read()
        except TimeoutError:
            raise LaneFailure("timeout") from None
        except aiohttp.ClientError as exc:
            raise LaneFailure(f"transport: {type(exc).__name__}") from None


async def open_lanes(stack: contextlib.AsyncExitStack, config: LoadConfig) -> list[Lane]:
    """The fleet's lanes over ``config.transport`` (``connections`` in all), closed with
    ``stack``."""
    opener = _LANE_OPENERS.get(config.transport)
    if opener is None:
        known = ", ".join(sorted(_LANE_OPENERS))
        raise ValueError(f"unknown transport {config.transport!r}; known: {known}")
    return await opener(stack, config)


async def _http_lanes(stack: contextlib.AsyncExitStack, config: LoadConfig) -> list[Lane]:
    """aiohttp sessions of a few keep-alive connections each."""
    per_lane = min(config.connections, _CONNECTIONS_PER_LANE)
    timeout = aiohttp.ClientTimeout(total=config.timeout)
    lanes: list[Lane] = []
    for _ in range(max(1, config.connections // per_lane)):
        session = aiohttp.ClientSession(
            base_url=config.base_url,
            connector=aiohttp.TCPConnector(limit=per_lane),
            timeout=timeout,
        )
        client = await stack.enter_async_context(session)
        lanes.append(_HttpLane(client=client, gate=asyncio.Semaphore(per_lane)))
    return lanes


@dataclass(slots=True)
class _QuicLane:
    """One QUIC connection (:class:`~omega.sync.h3_transport.Http3Transport`) carrying
    many devices' requests as concurrent streams; it counts its UDP bytes."""

    transport: Http3Transport
    gate: asyncio.Semaphore

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        try:
            answer = await self.transport.request("POST", path, body=body, headers=headers)
        except TransportError as exc:
            raise LaneFailure("timeout" if "timed out" in str(exc) else "transport: quic") from None
        return answer.status, answer.body


async def _quic_lanes(stack: contextlib.AsyncExitStack, config: LoadConfig) -> list[Lane]:
    """A few QUIC connections to ``door_url``, ``_STREAMS_PER_QUIC`` requests at a time
    each, pinned to ``door_cert``: pure-Python QUIC costs CPU per connection and per
    packet on both sides of a shared machine."""
    pem = Path(config.door_cert).read_bytes()
    pin = spki_pin(x509.load_pem_x509_certificate(pem))
    lanes: list[Lane] = []
    for _ in range(max(1, config.connections // _STREAMS_PER_QUIC)):
        transport = Http3Transport(config.door_url, pin=pin, timeout=config.timeout)
        stack.push_async_callback(transport.aclose)
        lanes.append(_QuicLane(transport=transport, gate=asyncio.Semaphore(_STREAMS_PER_QUIC)))
    return lanes


async def _grpc_lanes(stack: contextlib.AsyncExitStack, config: LoadConfig) -> list[Lane]:
    """Devices on their StreamSync streams over a few shared channels (grpcio loads only
    for a gRPC run)."""
    from omega.bench._grpc_lane import open_grpc_lanes

    return await open_grpc_lanes(stack, config)


LaneOpener = Callable[[contextlib.AsyncExitStack, "LoadConfig"], Awaitable[list[Lane]]]

#: How the fleet reaches the server, by ``LoadConfig.transport``.
_LANE_OPENERS: dict[str, LaneOpener] = {
    "http": _http_lanes,
    "grpc": _grpc_lanes,
    "quic": _quic_lanes,
}
#: The doors over TCP, whose bytes on the wire a step reports (``omega.bench._wire``).
_TCP_DOORS = {"http", "grpc"}


class WireSource(Protocol):
    def snapshot(self) -> WireSnapshot | None: ...


@dataclass(frozen=True, slots=True)
class _QuicWire:
    """The QUIC lanes' own counts: UDP payload bytes and datagrams, both ways (the kernel
    keeps no per-flow counters for UDP)."""

    lanes: list[Lane]

    def snapshot(self) -> WireSnapshot:
        found: WireSnapshot = {}
        for i, lane in enumerate(self.lanes):
            assert isinstance(lane, _QuicLane)
            stats = lane.transport.stats
            found[("quic", str(i))] = (stats.wire_bytes, stats.datagrams)
        return found


def wire_meter(config: LoadConfig, lanes: list[Lane]) -> WireSource | None:
    """What counts the fleet's bytes on the wire: the kernel's counters of the door's TCP
    port, or the QUIC lanes themselves (None: neither)."""
    if config.transport == "quic":
        return _QuicWire(lanes)
    if config.transport not in _TCP_DOORS:
        return None
    address = config.door_url or config.base_url
    port = address.rstrip("/").rpartition(":")[2]
    return WireMeter(int(port)) if port.isdigit() else None
