"""The server bench's lanes over the gRPC door (``omega bench server --transport grpc``).

A lane is one ``grpc.aio`` channel — one HTTP/2 connection, its own (a local subchannel
pool: gRPC would otherwise share one connection among channels to the same address) —
and the queue in front of it. Each device syncs over its own ``StreamSync`` stream on
its lane's channel, through the device transport itself
(:class:`omega.sync.grpc_transport.GrpcTransport`), as a TV would: the bench measures
the code a device runs, at a cost per request the shared 2 cores can carry.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc

from omega.bench.lanes import Lane, LaneFailure
from omega.bench.loadgen import LoadConfig
from omega.constellation.doors.grpc_door import MAX_STREAMS_PER_CONNECTION
from omega.errors import TransportError
from omega.sync.grpc_transport import GrpcTransport

__all__ = ["GrpcLane", "open_grpc_lanes"]

#: Requests in flight at once on one channel (HTTP/2 streams carry them side by side).
STREAMS_PER_CHANNEL = 8
#: Devices whose streams one channel holds: under the door's cap on a connection's
#: streams, with room for the registrations' and a retry's.
DEVICES_PER_CHANNEL = MAX_STREAMS_PER_CONNECTION - 10


@dataclass(slots=True)
class GrpcLane:
    """One channel, and a device transport (its stream) per device on it."""

    channel: Any
    target: str
    timeout: float
    gate: asyncio.Semaphore
    devices: dict[str, GrpcTransport] = field(default_factory=dict)

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        device = headers.get("Authorization", "")  # registrations share the anonymous one
        transport = self.devices.get(device)
        if transport is None:
            transport = GrpcTransport(self.target, timeout=self.timeout, channel=self.channel)
            self.devices[device] = transport
        try:
            answer = await transport.request("POST", path, body=body, headers=headers)
        except TransportError as exc:
            kind = "timeout" if "timed out" in str(exc) else f"transport: {_reason(exc)}"
            raise LaneFailure(kind) from None
        return answer.status, answer.body

    async def aclose(self) -> None:
        for transport in self.devices.values():
            await transport.aclose()
        await self.channel.close()


def _reason(error: TransportError) -> str:
    """``POST /api/omega/sync: unavailable: …`` → ``unavailable``."""
    parts = str(error).split(": ")
    return parts[1] if len(parts) > 1 else str(error)


async def open_grpc_lanes(stack: contextlib.AsyncExitStack, config: LoadConfig) -> list[Lane]:
    """``connections / STREAMS_PER_CHANNEL`` channels to ``config.door_url``, closed with
    ``stack``."""
    per_lane = min(config.connections, STREAMS_PER_CHANNEL)
    # Each device keeps its stream open between syncs, and the door takes at most
    # MAX_STREAMS_PER_CONNECTION on one connection: past that, a new stream waits for an
    # idle one to close (grpc_stream_idle) and the device's sync times out.
    channels = max(1, config.connections // per_lane, -(-config.viewers // DEVICES_PER_CHANNEL))
    lanes: list[Lane] = []
    for _ in range(channels):
        channel = grpc.aio.insecure_channel(
            config.door_url, options=[("grpc.use_local_subchannel_pool", 1)]
        )
        lane = GrpcLane(
            channel=channel,
            target=config.door_url,
            timeout=config.timeout,
            gate=asyncio.Semaphore(per_lane),
        )
        stack.push_async_callback(lane.aclose)
        lanes.append(lane)
    return lanes
