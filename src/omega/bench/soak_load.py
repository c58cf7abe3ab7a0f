"""The soak's load: ``python -m omega.bench.soak_load '<SoakLoad as JSON>'``.

The server bench's cheap devices (:mod:`omega.bench.loadgen`: protocol messages built
directly, attested registration, aiohttp lanes, an open-loop jittered schedule, latency
counted from the scheduled send) made durable, as the real sync client is. Each device
keeps a pool of patterns and bumps the version of each one it pushes, so every pattern
version it sends is unique; it builds a batch (``soak-<device>-<n>``) before sending it
and sends the same batch id and bytes at each of its syncs until the server acknowledges
it, and only then builds the next. A device whose last sync is still out skips its turn.
Its ledger is the truth the soak audits the server's storage against.

It runs at ``rate`` syncs/s for ``duration`` seconds, then drains: each device with a
batch unacknowledged resends it until acknowledged or ``drain_timeout`` passes. It
writes ``ledger_path`` (msgpack: per device, its viewer id, its pattern ids, and the
patterns of each acknowledged batch in order, as a bit mask over the pool) and
``samples_path`` (numpy: each sync's start on the host's monotonic clock, which every
process shares, its latency and its error kind). On stdout, one JSON line per event:
``ready``, ``started`` (``at``: the monotonic time), ``tick`` every ``tick`` seconds,
``done``.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from omega.bench.loadgen import (
    LoadConfig,
    _Device,
    _emit,
    _register,
    _Schedule,
    _title,
    dispatch,
    fast_loop,
    open_lanes,
    post_sync,
    quiet_gc,
)
from omega.protocol import codec
from omega.protocol.frequency import DEFAULT_EPSILON, make_report
from omega.protocol.messages import Pattern, PullRequest, PushRequest, SyncRequest
from omega.protocol.shares import make_shared_report

__all__ = ["SoakLoad", "batch_id", "main", "run_soak_load"]


class SoakLoad(msgspec.Struct, frozen=True, kw_only=True):
    #: Where, who and how (``rates`` is unused: the soak offers ``rate``).
    load: LoadConfig
    rate: float
    duration: float
    ledger_path: str
    samples_path: str
    #: Share of pushes that carry a two-server report sealed to ``helper_key`` (raw X25519).
    share_fraction: float = 0.0
    helper_key: bytes = b""
    drain_timeout: float = 60.0
    tick: float = 5.0


def batch_id(device: int, n: int) -> str:
    """The id of device ``device``'s ``n``-th batch (from 0)."""
    return f"soak-{device}-{n}"


@dataclass(slots=True)
class _Batch:
    n: int
    mask: int  # which patterns of the pool it carries (bit i: pattern i)
    body: bytes  # the SyncRequest, sent as is each time
    shares: int


@dataclass(slots=True)
class _Durable:
    """A device with its own queue: the batch in flight, and what was acknowledged."""

    device: _Device
    index: int
    versions: list[int]  # each pool pattern's last version pushed (0: never)
    acked: list[int] = field(default_factory=list)  # masks, batch by batch
    shares_acked: int = 0
    rejected: int = 0
    inflight: _Batch | None = None
    busy: bool = False


@dataclass
class _Tally:
    """Every sync: start time, latency, error kind (index into ``kinds``; 0 is none)."""

    start: array.array[float] = field(default_factory=lambda: array.array("d"))
    latency: array.array[float] = field(default_factory=lambda: array.array("d"))
    error: array.array[int] = field(default_factory=lambda: array.array("H"))
    kinds: dict[str | None, int] = field(default_factory=lambda: {None: 0})
    skipped: int = 0  # turns a device let pass with its last sync still out
    since_tick: Counter[str] = field(default_factory=Counter)

    def record(self, start: float, latency: float, error: str | None) -> None:
        self.start.append(start)
        self.latency.append(latency)
        self.error.append(self.kinds.setdefault(error, len(self.kinds)))
        self.since_tick["errors" if error else "ok"] += 1


class _Fleet:
    def __init__(self, devices: list[_Device], config: SoakLoad) -> None:
        self.config = config
        self.rng = random.Random(config.load.seed)
        self.key = (
            X25519PublicKey.from_public_bytes(config.helper_key) if config.helper_key else None
        )
        self.devices = [_Durable(d, i, [0] * len(d.patterns)) for i, d in enumerate(devices)]
        self.tally = _Tally()

    def next_batch(self, d: _Durable) -> _Batch:
        """A new batch: 10–30 patterns of the pool at their next versions, an LDP report
        as the server bench's devices send, and sometimes a two-server report."""
        pool, rng, load = d.device.patterns, self.rng, self.config.load
        chosen = sorted(rng.sample(range(len(pool)), min(len(pool), rng.randint(10, 30))))
        added: list[Pattern] = []
        updated: list[Pattern] = []
        for i in chosen:
            d.versions[i] += 1
            pattern = msgspec.structs.replace(pool[i], version=d.versions[i])
            (added if d.versions[i] == 1 else updated).append(pattern)
        shares = []
        if self.key is not None and rng.random() < self.config.share_fraction:
            shares.append(make_shared_report(rng.randrange(load.catalog), load.catalog, self.key))
        n = len(d.acked)
        push = PushRequest(
            viewer_id=d.device.viewer_id,
            batch_id=batch_id(d.index, n),
            codebook_id=load.codebook_id,
            added=added,
            updated=updated,
            reports=[make_report(_title(load, rng), DEFAULT_EPSILON, rng)] if load.catalog else [],
            shares=shares,
        )
        pull = PullRequest(viewer_id=d.device.viewer_id, since_version=d.device.cursor)
        body = codec.encode(SyncRequest(pull=pull, push=push))
        return _Batch(n, sum(1 << i for i in chosen), body, len(shares))

    async def sync(self, d: _Durable, due: float, *, new: bool = True) -> None:
        """One sync of ``d``: its batch in flight, else (``new``) a new one."""
        if d.busy:
            self.tally.skipped += 1
            return
        if d.inflight is None:
            if not new:
                return
            d.inflight = self.next_batch(d)
        d.busy = True
        start = time.monotonic()
        try:
            batch = d.inflight
            answer = await post_sync(d.device, batch.body)
            error = answer.error
            if answer.reply is not None:
                ack = answer.reply.ack
                if ack is None or ack.batch_id != batch_id(d.index, batch.n):
                    error = "no acknowledgement"
                else:
                    self._acknowledged(d, batch, set(ack.accepted))
                    d.device.cursor = max(d.device.cursor, answer.reply.pull.version)
        finally:
            d.busy = False
        loop = asyncio.get_running_loop()
        self.tally.record(start, loop.time() - due, error)

    @staticmethod
    def _acknowledged(d: _Durable, batch: _Batch, accepted: set[str]) -> None:
        """The server queued the batch's patterns it accepted (none are refused here)."""
        mask = 0
        for i, pattern in enumerate(d.device.patterns):
            if batch.mask >> i & 1 and pattern.id in accepted:
                mask |= 1 << i
        d.rejected += batch.mask.bit_count() - mask.bit_count()
        d.acked.append(mask)
        d.shares_acked += batch.shares
        d.inflight = None

    async def drain(self) -> dict[str, float | int]:
        """Resend every batch in flight until acknowledged (or ``drain_timeout``)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        passes = 0
        while loop.time() - started < self.config.drain_timeout:
            behind = [d for d in self.devices if d.inflight is not None]
            if not behind:
                break
            if passes:
                await asyncio.sleep(0.5)
            passes += 1
            await asyncio.gather(*(self.sync(d, loop.time(), new=False) for d in behind))
        return {
            "drain_s": round(loop.time() - started, 2),
            "drain_passes": passes,
            "left_in_flight": sum(d.inflight is not None for d in self.devices),
        }

    def write(self) -> None:
        ledger = [
            {
                "viewer_id": d.device.viewer_id,
                "patterns": [p.id for p in d.device.patterns],
                "acked": d.acked,
                "inflight": None if d.inflight is None else [d.inflight.n, d.inflight.mask],
                "shares_acked": d.shares_acked,
                "rejected": d.rejected,
            }
            for d in self.devices
        ]
        Path(self.config.ledger_path).write_bytes(msgspec.msgpack.encode(ledger))
        t = self.tally
        kinds = sorted(t.kinds, key=lambda k: t.kinds[k])
        np.savez(
            self.config.samples_path,
            start=np.frombuffer(t.start, dtype=np.float64),
            latency=np.frombuffer(t.latency, dtype=np.float64),
            error=np.frombuffer(t.error, dtype=np.uint16),
            kinds=np.array(["" if k is None else k for k in kinds]),
        )


async def _ticks(fleet: _Fleet, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        counts, fleet.tally.since_tick = fleet.tally.since_tick, Counter()
        busy = sum(d.inflight is not None for d in fleet.devices)
        _emit("tick", at=time.monotonic(), ok=counts["ok"], errors=counts["errors"], unacked=busy)


async def run_soak_load(config: SoakLoad) -> None:
    """Register, run the schedule for ``duration``, drain, write the ledger and samples."""
    async with contextlib.AsyncExitStack() as stack:
        lanes = await open_lanes(stack, config.load)
        started = time.perf_counter()
        fleet = _Fleet(await _register(lanes, config.load), config)
        _emit("ready", viewers=len(fleet.devices), setup_s=round(time.perf_counter() - started, 2))
        quiet_gc(stack)
        loop = asyncio.get_running_loop()
        start = loop.time()
        schedule = _Schedule(len(fleet.devices), config.rate, start, fleet.rng)
        _emit("started", at=time.monotonic())
        out: set[asyncio.Task[None]] = set()

        def fire(i: int, due: float) -> None:
            task = asyncio.create_task(fleet.sync(fleet.devices[i], due))
            out.add(task)
            task.add_done_callback(out.discard)

        ticker = asyncio.create_task(_ticks(fleet, config.tick))
        await dispatch(schedule, start + config.duration, fleet.rng, fire)
        await asyncio.gather(*out)
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        _emit("draining", at=time.monotonic())
        drained = await fleet.drain()
        fleet.write()
    t = fleet.tally
    _emit("done", syncs=len(t.start), skipped=t.skipped, **drained)


def main(argv: list[str] | None = None) -> None:
    """``python -m omega.bench.soak_load '<SoakLoad as JSON>'``."""
    args = sys.argv[1:] if argv is None else argv
    config = msgspec.json.decode(args[0], type=SoakLoad)
    with asyncio.Runner(loop_factory=fast_loop()) as runner:
        runner.run(run_soak_load(config))


if __name__ == "__main__":
    main()
