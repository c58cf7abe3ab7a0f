"""A fleet of simulated devices syncing with a constellation, open loop, for the server bench.

Run as its own process (``python -m omega.bench.loadgen CONFIG_JSON``) so the
devices and the server never share an interpreter. It registers ``viewers`` devices,
then for each offered rate in ``rates`` runs ``step_seconds`` of syncs: every device
syncs on its own schedule — period ``viewers / rate`` times a random jitter — whatever
the answers are doing (open loop, as TVs do), and each sync's latency runs from its
*scheduled* send time, so time spent queueing in the client counts (no coordinated
omission). A step's result is one JSON line on stdout; stepping stops after the first
step with p95 over ``p95_limit_ms`` or any error.

Every device registers attested: the bench acts as a TV maker (``manufacturer_key``, whose
public half the bench registered with the server) and certifies each one.

A sync is a real ``POST /api/omega/sync`` with a binary ``SyncRequest``: a push of 10–30
of the device's patterns under a fresh batch id (shaped as ``omega bench sync`` shapes
them) and, as a real device's push, one ε-LDP popularity report of a title (drawn with
Zipf-like weights from the ``catalog`` the bench published), plus a pull from the
device's cursor. Messages are built from the protocol types
directly: a full brain per device would measure the brain, not the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import json
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from omega.bench._cpu import CpuMeter
from omega.bench._wire import WireMeter, WireSnapshot
from omega.bench.lanes import Lane, LaneFailure, WireSource, open_lanes, wire_meter
from omega.bench.sync import synthetic_pushes
from omega.errors import RemoteProtocolError
from omega.protocol import BINARY_MEDIA_TYPE, codec
from omega.protocol.attestation import Manufacturer
from omega.protocol.frequency import DEFAULT_EPSILON, make_report
from omega.protocol.messages import (
    Pattern,
    PullRequest,
    PushRequest,
    Registration,
    RegistrationResponse,
    SyncRequest,
    SyncResponse,
)

__all__ = [
    "Answer",
    "Lane",
    "LaneFailure",
    "LoadConfig",
    "StepResult",
    "catalog_item",
    "dispatch",
    "fast_loop",
    "long_tail_title",
    "main",
    "open_lanes",
    "post_sync",
    "quiet_gc",
    "run_load",
]

#: The manufacturer id the bench certifies its devices as (key id "k1").
MANUFACTURER = "omega-bench"
_JITTER = (0.5, 1.5)  # a device's next sync comes after its period times U(0.5, 1.5)
_REGISTER_CONCURRENCY = 32


class LoadConfig(msgspec.Struct, frozen=True, kw_only=True):
    base_url: str
    #: The door the fleet comes through: "http" (``base_url``), or another door whose
    #: address is ``door_url`` (registration and syncs alike go through it).
    transport: str = "http"
    door_url: str = ""
    #: The door's certificate (PEM file) the fleet pins, for a door that speaks TLS.
    door_cert: str = ""
    codebook_id: str
    viewers: int
    rates: list[float]
    step_seconds: float
    #: Seconds at the first rate before the first measured step, not reported as a step
    #: (its figures go out as the "warmup" event): a fresh server's first seconds under
    #: load (its pools filling, caches, the database's first pages) are not its pace.
    warmup_seconds: float = 0.0
    p95_limit_ms: float = 50.0
    pull_only: float = 0.0  # share of syncs that carry no push
    connections: int = 64
    timeout: float = 10.0
    seed: int = 0
    server_pids: list[int] = []  # whose CPU time each step reports (Linux /proc)
    db_pid: int | None = None  # a database server whose process tree's CPU is reported
    catalog: int = 0  # titles ``catalog_item(0…catalog-1)`` reports are drawn from; 0: none
    #: The raw Ed25519 private key of the manufacturer ``MANUFACTURER``/k1 that attests
    #: every device (empty: devices register unattested, for a server that allows it).
    manufacturer_key: bytes = b""
    #: Device ``i`` is certified as ``f"{device_prefix}{i}"``: an attested device that
    #: registers again gets its viewer back, so two fleets on one server need two prefixes.
    device_prefix: str = "bench-"


class StepResult(msgspec.Struct, frozen=True, kw_only=True):
    offered_per_s: float
    syncs: int
    ok: int
    errors: int
    syncs_per_s: float  # successful syncs scheduled in the window, per second
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    send_lag_p95_ms: float  # how late the client itself started sends (its own overload)
    service_p95_ms: float  # from the request leaving the client's queue to its answer
    patterns_pushed: int
    error_kinds: dict[str, int] = {}
    passed: bool = False
    # Percent of one core during the step's window, from /proc (None elsewhere):
    server_cpu_pct: float | None = None
    db_cpu_pct: float | None = None  # the database server's processes (PostgreSQL)
    client_cpu_pct: float | None = None
    other_cpu_pct: float | None = None  # the rest of the machine: work sharing the cores
    steal_cpu_pct: float | None = None  # taken by the hypervisor: the box itself was slower
    server_cpu_ms_per_sync: float | None = None
    db_cpu_ms_per_sync: float | None = None
    # Bytes on the wire both ways per sync, framing included, and TCP segments (HTTP/3:
    # UDP datagrams) per sync: the kernel's TCP counters for a TCP door (omega.bench._wire),
    # the QUIC lanes' own count of UDP payloads for HTTP/3. None: not measured.
    wire_bytes_per_sync: float | None = None
    wire_segments_per_sync: float | None = None


@dataclass(slots=True)
class _Device:
    lane: Lane
    viewer_id: str
    headers: dict[str, str]
    patterns: list[Pattern]
    removed: list[str]
    cursor: int = 0


@dataclass(slots=True)
class _Sample:
    latency: float = 0.0
    lag: float = 0.0
    service: float = 0.0
    pushed: int = 0
    error: str | None = None


@dataclass(slots=True)
class _Step:
    rate: float
    samples: list[asyncio.Task[_Sample]] = field(default_factory=list)
    cpu: dict[str, float | None] = field(default_factory=dict)
    wire: tuple[WireSnapshot | None, WireSnapshot | None] = (None, None)


def _registrations(config: LoadConfig) -> Callable[[int], Registration]:
    """Device ``i``'s registration: attested by the bench's manufacturer, if it has one."""
    registration = Registration(device_model="bench-tv", region="global")
    if not config.manufacturer_key:
        return lambda i: registration
    key = Ed25519PrivateKey.from_private_bytes(config.manufacturer_key)
    maker = Manufacturer(MANUFACTURER, "k1", key)
    prefix = config.device_prefix
    return lambda i: maker.device(f"{prefix}{i}", model="bench-tv").attest(registration)


async def _register(lanes: list[Lane], config: LoadConfig) -> list[_Device]:
    """Register every device; each gets a pool of patterns it re-pushes (as updates)."""
    rng = np.random.default_rng(config.seed)
    templates = synthetic_pushes(2 * config.viewers, rng=rng)
    gate = asyncio.Semaphore(_REGISTER_CONCURRENCY)
    make = _registrations(config)

    async def one(i: int) -> _Device:
        lane = lanes[i % len(lanes)]
        body = codec.encode(make(i))
        async with gate:
            status, content = await lane.post(
                "/api/omega/viewers", body, {"Content-Type": BINARY_MEDIA_TYPE}
            )
        if status != 201:
            raise RuntimeError(f"registration failed: {status} {content[:200]!r}")
        reg = codec.decode(content, expect=RegistrationResponse)
        a, b = templates[2 * i], templates[2 * i + 1]
        return _Device(
            lane=lane,
            viewer_id=reg.viewer_id,
            headers={
                "Content-Type": BINARY_MEDIA_TYPE,
                "Authorization": f"Bearer {reg.access_token}",
            },
            patterns=[*a.added, *a.updated, *b.added, *b.updated],
            removed=list(a.removed),
        )

    return list(await asyncio.gather(*(one(i) for i in range(config.viewers))))


def catalog_item(i: int) -> str:
    return f"bench-title-{i}"


def long_tail_title(catalog: int, rng: random.Random) -> str:
    """A title of ``catalog`` with probability ∝ 1 / (rank + 1) (a long tail, as viewing is)."""
    u = rng.random()
    return catalog_item(min(catalog - 1, int((catalog + 1) ** u) - 1))


def _title(config: LoadConfig, rng: random.Random) -> str:
    return long_tail_title(config.catalog, rng)


def _request(device: _Device, config: LoadConfig, rng: random.Random) -> tuple[bytes, int]:
    pull = PullRequest(viewer_id=device.viewer_id, since_version=device.cursor, max_bytes=5120)
    if rng.random() < config.pull_only:
        return codec.encode(SyncRequest(pull=pull)), 0
    chosen = rng.sample(device.patterns, min(len(device.patterns), rng.randint(10, 30)))
    n_added = len(chosen) // 3 * 2
    push = PushRequest(
        viewer_id=device.viewer_id,
        batch_id=uuid.uuid4().hex,
        codebook_id=config.codebook_id,
        added=chosen[:n_added],
        updated=chosen[n_added:],
        removed=device.removed[: rng.randint(0, len(device.removed))],
        reports=[make_report(_title(config, rng), DEFAULT_EPSILON, rng)] if config.catalog else [],
    )
    return codec.encode(SyncRequest(pull=pull, push=push)), len(chosen)


@dataclass(frozen=True, slots=True)
class Answer:
    """What one sync request came back with: the decoded reply, or what went wrong."""

    reply: SyncResponse | None
    error: str | None  # an error kind: "http 503", "timeout", "transport: …"
    service: float = 0.0  # seconds from leaving the lane's queue to the answer


async def post_sync(device: _Device, body: bytes) -> Answer:
    """POST one encoded ``SyncRequest`` on the device's lane; errors become kinds."""
    loop = asyncio.get_running_loop()
    try:
        async with device.lane.gate:
            sent = loop.time()
            status, content = await device.lane.post("/api/omega/sync", body, device.headers)
            service = loop.time() - sent
        if status != 200:
            return Answer(None, f"http {status}", service)
        return Answer(codec.decode(content, expect=SyncResponse, max_bytes=1 << 22), None, service)
    except LaneFailure as exc:
        return Answer(None, exc.kind)
    except RemoteProtocolError:
        return Answer(None, "undecodable answer")


async def _sync(
    device: _Device,
    config: LoadConfig,
    rng: random.Random,
    scheduled: float,
) -> _Sample:
    loop = asyncio.get_running_loop()
    sample = _Sample(lag=loop.time() - scheduled)
    body, sample.pushed = _request(device, config, rng)
    answer = await post_sync(device, body)
    sample.error, sample.service = answer.error, answer.service
    if answer.reply is not None:
        if answer.reply.ack is not None and answer.reply.ack.rejected:
            sample.error = "patterns rejected"
        device.cursor = max(device.cursor, answer.reply.pull.version)
    sample.latency = loop.time() - scheduled
    return sample


def _p95_ms(values: list[float]) -> float:
    return round(float(np.percentile(values, 95)) * 1000, 2) if values else 0.0


def _summary(step: _Step, samples: list[_Sample], config: LoadConfig) -> StepResult:
    latencies = np.array([s.latency for s in samples]) * 1000 if samples else np.zeros(1)
    lags = np.array([s.lag for s in samples]) * 1000 if samples else np.zeros(1)
    kinds = Counter(s.error for s in samples if s.error is not None)
    errors = sum(kinds.values())
    p95 = float(np.percentile(latencies, 95))

    def per_sync(pct: float | None) -> float | None:
        if pct is None or not samples:
            return None
        return round(pct * 10 * config.step_seconds / len(samples), 3)

    return StepResult(
        offered_per_s=step.rate,
        syncs=len(samples),
        ok=len(samples) - errors,
        errors=errors,
        syncs_per_s=round((len(samples) - errors) / config.step_seconds, 1),
        p50_ms=round(float(np.percentile(latencies, 50)), 2),
        p95_ms=round(p95, 2),
        p99_ms=round(float(np.percentile(latencies, 99)), 2),
        max_ms=round(float(latencies.max()), 2),
        send_lag_p95_ms=round(float(np.percentile(lags, 95)), 2),
        service_p95_ms=_p95_ms([s.service for s in samples]),
        patterns_pushed=sum(s.pushed for s in samples),
        error_kinds=dict(kinds),
        passed=bool(samples) and errors == 0 and p95 <= config.p95_limit_ms,
        server_cpu_ms_per_sync=per_sync(step.cpu.get("server_cpu_pct")),
        db_cpu_ms_per_sync=per_sync(step.cpu.get("db_cpu_pct")),
        **WireMeter.per_request(*step.wire, len(samples)),
        **step.cpu,
    )


class _Schedule:
    """When each device syncs next: a heap of (due time, device index).

    Each device keeps its own rhythm across steps; a new rate rescales what is left of
    every device's current wait, so the arrivals stay spread out when the rate changes.
    """

    def __init__(self, devices: int, rate: float, start: float, rng: random.Random) -> None:
        self.period = devices / rate
        self.heap = [(start + rng.uniform(0, self.period), i) for i in range(devices)]
        heapq.heapify(self.heap)

    def retime(self, devices: int, rate: float, now: float) -> None:
        period = devices / rate
        scale = period / self.period
        self.heap = [(now + max(0.0, due - now) * scale, i) for due, i in self.heap]
        heapq.heapify(self.heap)
        self.period = period


async def dispatch(
    schedule: _Schedule, end: float, rng: random.Random, fire: Callable[[int, float], None]
) -> None:
    """Call ``fire(device index, due time)`` at each due time of ``schedule`` before
    ``end`` (the loop's clock), rescheduling that device one jittered period later."""
    loop = asyncio.get_running_loop()
    heap = schedule.heap
    while heap[0][0] < end:
        due, i = heap[0]
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        heapq.heapreplace(heap, (due + schedule.period * rng.uniform(*_JITTER), i))
        fire(i, due)


async def _run_step(
    devices: list[_Device],
    config: LoadConfig,
    schedule: _Schedule,
    rng: random.Random,
    meter: CpuMeter,
    wire: WireSource | None = None,
) -> _Step:
    """Dispatch one step's syncs on schedule; returns with them still in flight."""
    loop = asyncio.get_running_loop()
    step = _Step(rate=len(devices) / schedule.period)
    before = meter.snapshot()
    wire_before = wire.snapshot() if wire is not None else None

    def fire(i: int, due: float) -> None:
        step.samples.append(asyncio.create_task(_sync(devices[i], config, rng, due)))

    await dispatch(schedule, loop.time() + config.step_seconds, rng, fire)
    step.cpu = meter.usage(before, meter.snapshot())
    step.wire = (wire_before, wire.snapshot() if wire is not None else None)
    return step


def _emit(event: str, **data: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **data}) + "\n")
    sys.stdout.flush()


async def run_load(config: LoadConfig) -> list[StepResult]:
    """Register the fleet, then step the offered rate until a step fails or rates run out.

    Steps follow each other with no pause; a step's syncs that are still in flight when
    the next begins finish alongside it (and count for the step that scheduled them).
    """
    rng = random.Random(config.seed)
    results: list[StepResult] = []
    async with contextlib.AsyncExitStack() as stack:
        lanes = await open_lanes(stack, config)
        started = time.perf_counter()
        devices = await _register(lanes, config)
        _emit("ready", viewers=len(devices), setup_s=round(time.perf_counter() - started, 2))
        quiet_gc(stack)
        pending: asyncio.Task[StepResult] | None = None
        loop = asyncio.get_running_loop()
        meter = CpuMeter(config.server_pids, config.db_pid)
        wire = wire_meter(config, lanes)
        schedule = _Schedule(len(devices), config.rates[0], loop.time(), rng)
        if config.warmup_seconds > 0:
            await _warm_up(devices, config, schedule, rng, meter)
        _emit("measuring")
        for rate in config.rates:
            schedule.retime(len(devices), rate, loop.time())
            step = await _run_step(devices, config, schedule, rng, meter, wire)
            if pending is not None:
                results.append(await pending)
                _emit("step", **msgspec.to_builtins(results[-1]))
                if not results[-1].passed:
                    for task in step.samples:
                        task.cancel()  # the step after a failure is not reported
                    await asyncio.gather(*step.samples, return_exceptions=True)
                    return results
            pending = asyncio.create_task(_finish(step, config))
        if pending is not None:
            results.append(await pending)
            _emit("step", **msgspec.to_builtins(results[-1]))
    return results


async def _warm_up(
    devices: list[_Device],
    config: LoadConfig,
    schedule: _Schedule,
    rng: random.Random,
    meter: CpuMeter,
) -> None:
    """``warmup_seconds`` at the first rate; its syncs finish before the first step."""
    warm = msgspec.structs.replace(config, step_seconds=config.warmup_seconds)
    schedule.retime(len(devices), config.rates[0], asyncio.get_running_loop().time())
    step = await _run_step(devices, warm, schedule, rng, meter)
    _emit("warmup", **msgspec.to_builtins(await _finish(step, warm)))


def quiet_gc(stack: contextlib.AsyncExitStack) -> None:
    """No cyclic collections while measuring (until ``stack`` closes).

    This process's full collections took 70-140 ms every 16-19 s at 500 syncs/s (its heap
    grows with the samples), and every sync in flight meanwhile was charged to the
    server. Garbage here is mostly freed by reference counting; what cycles remain wait
    for the end."""
    gc.collect()
    gc.freeze()
    gc.disable()
    stack.callback(gc.enable)


async def _finish(step: _Step, config: LoadConfig) -> StepResult:
    return _summary(step, list(await asyncio.gather(*step.samples)), config)


def main(argv: list[str] | None = None) -> None:
    """``python -m omega.bench.loadgen '<LoadConfig as JSON>'``."""
    args = sys.argv[1:] if argv is None else argv
    config = msgspec.json.decode(args[0], type=LoadConfig)
    with asyncio.Runner(loop_factory=fast_loop()) as runner:
        runner.run(run_load(config))
    _emit("done")


def fast_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (not on Windows), else asyncio's: a load
    generator's cost per request is CPU the server it measures does not get."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    main()
