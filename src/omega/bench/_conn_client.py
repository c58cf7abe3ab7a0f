"""One client process of ``omega bench connections``: a slice of the fleet, each device on
a connection of its own (``python -m omega.bench._conn_client '<ClientConfig as JSON>'``).

Holding 10,000 sockets and their sessions is work for the client too, so the bench runs
several of these; each raises its own open-file limit. The parent drives them in phases,
one line on stdin each, and each phase ends with one JSON line on stdout:

1. (at start) register the slice's devices over a few shared connections, send each
   one pull, close the shared connections: ``registered``;
2. ``open``: give every device its own connection (an HTTP/1.1 keep-alive connection, a
   gRPC channel with the device's ``StreamSync`` stream, or a QUIC connection) and send
   one pull-only sync on it: ``opened``;
3. ``sync``: the first ``syncing`` devices sync (push + pull, as ``omega bench server``'s
   devices) on their own connections, open loop at ``rate`` per second for ``seconds``;
   every latency (ms, from the scheduled send time) and error kind: ``synced``;
4. ``check``: every device sends one more pull on its connection; how many answered,
   and how many connections had to be opened again (QUIC handshakes, gRPC streams):
   ``checked``;
5. ``close``: close everything: ``closed``, and exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from cryptography import x509

from omega.bench._grpc_lane import GrpcLane
from omega.bench.lanes import Lane, _HttpLane, _QuicLane
from omega.bench.loadgen import (
    LoadConfig,
    _Device,
    _register,
    _Schedule,
    _sync,
    dispatch,
    fast_loop,
    open_lanes,
    post_sync,
    quiet_gc,
)
from omega.errors import TransportError
from omega.protocol import codec
from omega.protocol.messages import PullRequest, SyncRequest
from omega.protocol.quic import spki_pin
from omega.sync.h3_transport import Http3Transport

__all__ = ["ClientConfig", "main", "raise_open_files"]

_SHARED_CONNECTIONS = 8  # registration's connections, closed before the count starts
_PING_EVERY = 20.0  # seconds between PINGs on a held QUIC connection (idle timeout: 60)


class ClientConfig(msgspec.Struct, frozen=True, kw_only=True):
    load: LoadConfig  # the door, the slice's devices (viewers, device_prefix), the seed
    syncing: int  # how many of the slice's devices sync in the sync phase
    rate: float  # their syncs per second, together
    seconds: float  # length of the sync phase
    hold: float  # seconds a connection is kept open by this side when idle
    open_concurrency: int = 64


def raise_open_files() -> dict[str, int]:
    """Raise this process's soft limit on open files to its hard limit (children inherit
    it); the limits before and after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return {
        "soft_before": soft,
        "soft": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "hard": hard,
    }


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _emit(event: str, **data: object) -> None:
    figures = {"rss_kb": _rss_kb(), "cpu_s": round(time.process_time(), 3)}
    sys.stdout.write(msgspec.json.encode({"event": event, **figures, **data}).decode() + "\n")
    sys.stdout.flush()


async def _command(expected: str) -> None:
    line = await asyncio.to_thread(sys.stdin.readline)
    if line.strip() != expected:
        raise SystemExit(f"expected {expected!r} from the bench, got {line.strip()!r}")


async def _device_lane(
    stack: contextlib.AsyncExitStack, config: ClientConfig, pin: str | None
) -> Lane:
    """A connection of one device's own, over ``config.load.transport``."""
    load = config.load
    gate = asyncio.Semaphore(1)
    if load.transport == "http":
        session = aiohttp.ClientSession(
            base_url=load.base_url,
            connector=aiohttp.TCPConnector(limit=1, keepalive_timeout=config.hold),
            timeout=aiohttp.ClientTimeout(total=load.timeout),
        )
        return _HttpLane(client=await stack.enter_async_context(session), gate=gate)
    if load.transport == "grpc":
        import grpc

        options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", -1)]
        channel = grpc.aio.insecure_channel(load.door_url, options=options)
        lane = GrpcLane(channel=channel, target=load.door_url, timeout=load.timeout, gate=gate)
        stack.push_async_callback(lane.aclose)
        return lane
    # Closed all at once by _open: each close waits for the server's acknowledgement.
    transport = Http3Transport(load.door_url, pin=pin, timeout=load.timeout)
    return _QuicLane(transport=transport, gate=gate)


def _pull(device: _Device) -> bytes:
    return codec.encode(
        SyncRequest(pull=PullRequest(viewer_id=device.viewer_id, since_version=device.cursor))
    )


async def _pulls(devices: list[_Device], concurrency: int, *, shared: bool = False) -> Counter[str]:
    """One pull-only sync per device on its current lane; error kinds counted.
    ``shared``: the lanes are shared, so a device's gRPC stream is ended after its pull
    (the door allows 100 streams a connection)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(device: _Device) -> str | None:
        async with gate:
            answer = await post_sync(device, _pull(device))
            if shared and isinstance(device.lane, GrpcLane):
                stream = device.lane.devices.pop(device.headers["Authorization"], None)
                if stream is not None:
                    await stream.aclose()
        if answer.reply is not None:
            device.cursor = max(device.cursor, answer.reply.pull.version)
        return answer.error

    return Counter(e for e in await asyncio.gather(*(one(d) for d in devices)) if e is not None)


async def _open(
    stack: contextlib.AsyncExitStack, devices: list[_Device], config: ClientConfig
) -> Counter[str]:
    """Each device's own connection, made live by one pull on it."""
    pin = None
    if config.load.transport == "quic":
        pem = Path(config.load.door_cert).read_bytes()
        pin = spki_pin(x509.load_pem_x509_certificate(pem))
    for device in devices:
        device.lane = await _device_lane(stack, config, pin)
    if pin is not None:  # QUIC: kept alive from the first connection to the last check
        quic = [d.lane.transport for d in devices if isinstance(d.lane, _QuicLane)]
        stack.push_async_callback(_close_all, quic)
        pinging = asyncio.create_task(_keep_alive(devices, _PING_EVERY))
        stack.callback(pinging.cancel)
    failed = await _pulls(devices, config.open_concurrency)
    for device in devices:
        if isinstance(device.lane, GrpcLane):  # keep the stream (the transport's own
            for transport in device.lane.devices.values():  # default renews it at 60 s)
                transport.reuse_for = config.hold
    return failed


async def _sync_phase(devices: list[_Device], config: ClientConfig) -> dict[str, Any]:
    """The syncing devices, open loop at ``config.rate`` for ``config.seconds``."""
    syncing = devices[: config.syncing]
    if not syncing or config.rate <= 0:
        return {"syncs": 0, "patterns": 0, "latencies_ms": [], "error_kinds": {}}
    loop = asyncio.get_running_loop()
    rng = random.Random(config.load.seed)
    schedule = _Schedule(len(syncing), config.rate, loop.time(), rng)
    tasks: list[asyncio.Task[Any]] = []

    def fire(i: int, due: float) -> None:
        tasks.append(asyncio.create_task(_sync(syncing[i], config.load, rng, due)))

    await dispatch(schedule, loop.time() + config.seconds, rng, fire)
    samples = await asyncio.gather(*tasks)
    return {
        "syncs": len(samples),
        "patterns": sum(s.pushed for s in samples if s.error is None),
        "latencies_ms": [round(s.latency * 1000, 3) for s in samples if s.error is None],
        "error_kinds": dict(Counter(s.error for s in samples if s.error is not None)),
    }


async def _close_all(transports: list[Http3Transport]) -> None:
    await asyncio.gather(*(transport.aclose() for transport in transports))


async def _keep_alive(devices: list[_Device], every: float) -> None:
    """Ping each device's QUIC connection every ``every`` seconds while they are held:
    aioquic closes a connection idle for 60 s (on either side)."""
    lanes = [d.lane for d in devices if isinstance(d.lane, _QuicLane)]
    gate = asyncio.Semaphore(64)

    async def one(lane: _QuicLane) -> None:
        async with gate:
            with contextlib.suppress(TransportError):
                await lane.transport.ping()

    while lanes:
        started = time.monotonic()
        await asyncio.gather(*(one(lane) for lane in lanes))
        await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))


def _reopened(devices: list[_Device]) -> int:
    """Connections (QUIC) or streams (gRPC) a device had to open more than once."""
    count = 0
    for device in devices:
        lane: Any = device.lane
        if isinstance(lane, _QuicLane):
            count += lane.transport.stats.handshakes > 1
        elif isinstance(lane, GrpcLane):
            count += sum(t.streams_opened > 1 for t in lane.devices.values())
    return count


async def run(config: ClientConfig) -> None:
    """The phases of the module docstring."""
    async with contextlib.AsyncExitStack() as held:
        started = time.perf_counter()
        async with contextlib.AsyncExitStack() as shared:
            lanes = await open_lanes(shared, config.load)
            devices = await _register(lanes, config.load)
            warm = await _pulls(devices, _SHARED_CONNECTIONS, shared=True)
        quiet_gc(held)
        _emit(
            "registered",
            devices=len(devices),
            seconds=round(time.perf_counter() - started, 2),
            error_kinds=dict(warm),
        )
        await _command("open")
        started = time.perf_counter()
        failed = await _open(held, devices, config)
        _emit("opened", seconds=round(time.perf_counter() - started, 2), error_kinds=dict(failed))

        await _command("sync")
        _emit("synced", **await _sync_phase(devices, config))
        await _command("check")
        failed = await _pulls(devices, config.open_concurrency)
        _emit("checked", error_kinds=dict(failed), reopened=_reopened(devices))
        await _command("close")
    _emit("closed")


def main(argv: list[str] | None = None) -> None:
    """``python -m omega.bench._conn_client '<ClientConfig as JSON>'``."""
    args = sys.argv[1:] if argv is None else argv
    config = msgspec.json.decode(args[0], type=ClientConfig)
    raise_open_files()
    with asyncio.Runner(loop_factory=fast_loop()) as runner:
        runner.run(run(config))


if __name__ == "__main__":
    main()
