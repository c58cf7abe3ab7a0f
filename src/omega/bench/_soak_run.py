"""The soak's run: the load process, the brains, the faults; then the drain.

:func:`soak` starts the cheap devices' process (:mod:`omega.bench.soak_load`) and a
:class:`~omega.sync.DeviceRuntime` per brain (their transport notes what the server
acknowledged), runs the fault schedule from the moment the load starts while the
households watch on, and at the end drains: the load process resends what is
unacknowledged, the brains are asked to ``sync_now`` until their outboxes are empty.
:func:`final_rounds` then asks the server for rounds until the queue is folded and the
two-server reports counted.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec

from omega.bench._cpu import CpuMeter, CpuSnapshot
from omega.bench._fresh_tv import rss_mb
from omega.bench._soak_audit import BRAINS_LEDGER, BrainsLedger, LedgerTransport
from omega.bench._soak_faults import Fault, FaultRunner, schedule
from omega.bench._soak_parts import Parts, Progress, SoakPlan, load_config
from omega.bench.faults import ResetProxy
from omega.bench.fleet_restart import _Device, _drain, _Log, _run_runtimes, _shared, _watch
from omega.bench.server import _tail
from omega.bench.serving import BenchError
from omega.bench.soak_load import SoakLoad
from omega.sync import HttpTransport, SyncSchedule

__all__ = ["Outcome", "Rss", "fault_schedule", "final_rounds", "soak"]


def fault_schedule(plan: SoakPlan) -> list[Fault]:
    """The plan's faults, drawn from its seed."""
    return schedule(
        duration=plan.duration,
        restarts=plan.restarts,
        reset_bursts=plan.reset_bursts,
        server_down=plan.server_down,
        helper_down=plan.helper_down,
        rng=random.Random(plan.seed),
    )


@dataclass
class Rss:
    """Resident set sizes of the server and the helper, sampled through the run."""

    samples: dict[str, list[float]] = field(default_factory=lambda: {"server": [], "helper": []})

    def take(self, parts: Parts) -> dict[str, float]:
        now = {}
        for name, child in (("server", parts.server), ("helper", parts.helper)):
            pid = child.pid
            if pid is not None:
                now[name] = round(rss_mb(pid), 1)
                self.samples[name].append(now[name])
        return now

    async def sample(self, parts: Parts, every: float = 5.0) -> None:
        while True:
            self.take(parts)
            await asyncio.sleep(every)


@dataclass
class _Load:
    """The load process and what it said."""

    process: asyncio.subprocess.Process
    log: Path
    started: asyncio.Future[float]
    events: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def read(self, say: Progress) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            event = json.loads(line)
            kind = event.pop("event")
            self.events[kind] = event
            if kind == "started" and not self.started.done():
                self.started.set_result(float(event["at"]))
            say(f"load-{kind}", event)
        if not self.started.done():
            self.started.set_exception(
                BenchError(f"the soak's load process ended before it started:\n{_tail(self.log)}")
            )


async def _start_load(
    config: SoakLoad, log: Path, say: Progress
) -> tuple[_Load, asyncio.Task[None]]:
    with log.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "omega.bench.soak_load",
            msgspec.json.encode(config).decode(),
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    load = _Load(process, log, asyncio.get_running_loop().create_future())
    return load, asyncio.create_task(load.read(say))


async def _households(fleet: list[_Device], until: float, every: float, seed: int) -> None:
    """Each household watches a couple of its cells every ``every`` seconds."""
    rng = random.Random(seed)
    turn = 0
    while time.monotonic() + every < until:
        await asyncio.sleep(every)
        turn += 1
        for device in fleet:
            cells = rng.sample(device.cells, 2)
            await asyncio.to_thread(_watch, device.brain, device.clock, cells, rounds=1, first=turn)


def _runtimes(
    fleet: list[_Device], transport: LedgerTransport, plan: SoakPlan, helper_key: bytes, log: _Log
) -> list[asyncio.Task[None]]:
    """A runtime per brain, the helper's key pinned: its pushes carry two-server reports."""
    schedule = SyncSchedule(
        interval=plan.brain_interval,
        base=0.5,
        cap=max(1.0, plan.brain_interval * 2),
        first_delay=plan.brain_interval,
    )
    return _run_runtimes(
        fleet, transport, schedule, tick=1.0, seed=plan.seed, log=log, helper_key=helper_key
    )


@dataclass
class Outcome:
    """What the run did, for the report."""

    t0: float  # when the load started (monotonic)
    drained_at: float  # when its drain began
    faults: FaultRunner
    load: dict[str, dict[str, Any]]  # the load process's last event of each kind
    brains_log: _Log
    brains_drain: dict[str, Any]
    brains_failed: list[str]
    rss: Rss
    rss_start: dict[str, float]
    rss_end: dict[str, float]  # once drained (before the final rounds)
    machine: dict[str, Any]  # the machine's load over the run (it is shared)


async def soak(
    plan: SoakPlan,
    parts: Parts,
    proxy: ResetProxy,
    fleet: list[_Device],
    rate: float,
    say: Progress,
) -> Outcome:
    """The load, the brains and the faults for ``plan.duration``; then the drain."""
    root = parts.root
    config = SoakLoad(
        load=load_config(plan, parts, proxy.url, probe=False),
        rate=rate,
        duration=plan.duration,
        ledger_path=str(root / "load-ledger.msgpack"),
        samples_path=str(root / "load-samples.npz"),
        share_fraction=plan.share_fraction,
        helper_key=parts.helper_key,
        drain_timeout=plan.drain_timeout,
        tick=min(30.0, max(5.0, plan.duration / 20)),  # a progress line every 5–30 s
    )
    transport = LedgerTransport(HttpTransport(proxy.url))
    brains_log = _Log()
    runtimes = _runtimes(fleet, transport, plan, parts.helper_key, brains_log)
    load, reader = await _start_load(config, root / "load.log", say)
    rss = Rss()
    faults = FaultRunner(
        parts.server,
        parts.helper,
        parts.db_url,
        proxy,
        server_down=plan.server_down,
        helper_down=plan.helper_down,
        rng=random.Random(plan.seed + 1),
        say=say,
    )
    background: list[asyncio.Task[None]] = [reader]  # stopped however the run ends
    try:
        t0 = await load.started
        rss_start = rss.take(parts)
        cpu = CpuMeter([])
        before = cpu.snapshot()
        background.append(asyncio.create_task(rss.sample(parts)))
        timetable = fault_schedule(plan)
        say("schedule", {"faults": [f"{f.kind} at {f.at:g} s" for f in timetable]})
        watching = asyncio.create_task(
            _households(fleet, t0 + plan.duration, plan.watch_every, plan.seed)
        )
        background.append(watching)
        await faults.run(timetable, t0)
        await watching
        await asyncio.sleep(max(0.0, t0 + plan.duration - time.monotonic()))
        say("draining", {})
        brains_drain = await _drain_brains(fleet, plan.drain_timeout)
        await reader
        if await load.process.wait() != 0:
            raise BenchError(f"the soak's load process failed:\n{_tail(load.log)}")
        rss_end = rss.take(parts)
        machine = _machine(before, cpu.snapshot())
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if load.process.returncode is None:
            load.process.kill()
            await load.process.wait()
        for device in fleet:
            if device.runtime is not None:
                device.runtime.stop()
        ends = await asyncio.gather(*runtimes, return_exceptions=True)
        await transport.aclose()
    _write_brains_ledger(root, transport, fleet)
    return Outcome(
        t0=t0,
        drained_at=float(load.events.get("draining", {}).get("at", t0 + plan.duration)),
        faults=faults,
        load=load.events,
        brains_log=brains_log,
        brains_drain=brains_drain,
        brains_failed=[repr(e) for e in ends if isinstance(e, BaseException)],
        rss=rss,
        rss_start=rss_start,
        rss_end=rss_end,
        machine=machine,
    )


def _machine(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, Any]:
    """How busy the whole machine was over the run — this soak's processes and any other
    work sharing the cores — in % of one core, and its load average at the end."""

    def pct(a: float | None, b: float | None) -> float | None:
        return (
            None if a is None or b is None else round(100 * (b - a) / (after.wall - before.wall), 1)
        )

    return {
        "busy_cpu_pct": pct(before.busy, after.busy),
        "stolen_cpu_pct": pct(before.stolen, after.stolen),
        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
    }


async def _drain_brains(fleet: list[_Device], timeout: float) -> dict[str, Any]:
    """``sync_now`` until every brain's outbox is empty and nothing is in flight. The
    brains are flushed first: learning not yet written is not in the outbox yet."""
    for device in fleet:
        await asyncio.to_thread(device.brain.flush)
    try:
        needed = await asyncio.wait_for(_drain(fleet), timeout)
    except TimeoutError:
        needed = None
    return {
        "drained_with_sync_now": needed,  # None: not within the timeout
        "outbox_left": sum(d.brain.sync.outbox_size() for d in fleet),
        "inflight_left": sum(d.brain.sync.inflight() is not None for d in fleet),
    }


def _write_brains_ledger(root: Path, transport: LedgerTransport, fleet: list[_Device]) -> None:
    ledger = BrainsLedger(
        batches=list(transport.batches.values()),
        shared=[_shared(device.brain) for device in fleet],
    )
    (root / BRAINS_LEDGER).write_bytes(msgspec.msgpack.encode(ledger))


def final_rounds(base_url: str, token: str, *, most: int = 20) -> list[dict[str, Any]]:
    """Rounds (asked for as an admin) until one folds and counts nothing more."""
    done = []
    for _ in range(most):
        answer = httpx.post(
            base_url + "/api/omega/rounds",
            headers={"Authorization": f"Bearer {token}"},
            timeout=600,
        )
        if answer.status_code != 200:
            raise BenchError(f"a final round failed: {answer.status_code} {answer.text}")
        result = answer.json()["result"]
        done.append({"applied": result["applied"], "reports": result["reports"]})
        if not result["applied"] and not result["reports"]:
            break
    return done
