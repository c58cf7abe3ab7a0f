"""``omega bench failover``: two replicas under load, one SIGKILLed; the fleet moves on.

Two ``omega serve`` processes (replicas ``a`` and ``b``) share one PostgreSQL database
(an embedded server this bench starts) and the data directory's keys. ``devices`` TVs in
this process — real brains, as in ``omega bench fleet-restart`` — each keep syncing
through a :class:`~omega.sync.FailoverTransport` that knows both replicas, half of them
starting on each (as DNS round robin would spread them). The run:

1. **steady**: every device syncs on its interval for ``steady`` seconds;
2. **kill**: replica ``a`` is SIGKILLed from outside and not restarted; the households
   watch on; ``after`` seconds are observed;
3. **drain**: devices with changes still queued are asked to sync until none is left;
   the fleet and replica ``b`` stop.

Reported: the devices' sync attempts that failed after the kill, and the **failure
window** — from the kill to the end of the last failed attempt (a request ``a`` held
when it died fails once; the device's next attempt goes to ``b``; a device idle at the
kill finds ``a`` refusing and is sent to ``b`` in the same attempt, with no failure);
for the devices that failed, how long until each synced again; failovers made; and the
audit of the shared store against what every brain shared (patterns lost or stored
twice), as the fleet-restart bench does it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from omega.bench.fleet_restart import (
    STORED_SQL,
    _audit_rows,
    _Device,
    _drain,
    _open_fleet,
    _publish_codebook,
    _shared_catalog,
    _watch,
)
from omega.bench.pgserver import embedded_postgres
from omega.bench.server import server_command, trust_manufacturer
from omega.bench.serving import BenchError, ServerProcess, free_port
from omega.clock import SystemClock
from omega.constellation import Settings, load_admin_token, load_keys
from omega.errors import InputError
from omega.protocol.attestation import Manufacturer
from omega.sync import DeviceRuntime, FailoverTransport, HttpTransport, RuntimeStatus, SyncSchedule

__all__ = ["run_failover"]

Progress = Callable[[str, Mapping[str, Any]], None]


@dataclass
class _Timeline:
    """Every sync attempt of the fleet: (monotonic start, end, device, succeeded)."""

    attempts: list[tuple[float, float, int, bool]] = field(default_factory=list)

    def listener(self, device: _Device, index: int) -> Callable[[RuntimeStatus], None]:
        def heard(status: RuntimeStatus) -> None:
            syncs, failures = device.last
            now = time.monotonic()
            if status.state == "syncing":
                device.began = now
            elif status.syncs > syncs or status.failures > failures:
                self.attempts.append((device.began, now, index, status.syncs > syncs))
            device.last = (status.syncs, status.failures)

        return heard


@contextlib.contextmanager
def _replicas(root: Path, db_url: str, pace: float) -> Iterator[tuple[list[ServerProcess], str]]:
    """Replicas ``a`` and ``b`` on one database and data directory (``a`` first: it makes
    the keys ``b`` loads), and the admin token; stopped on the way out."""
    data_dir = root / "server"
    settings = Settings(data_dir=data_dir)
    load_keys(settings)
    token = load_admin_token(settings)
    servers: list[ServerProcess] = []
    try:
        for name in "ab":
            port = free_port()
            command, env = server_command(
                port=port,
                data_dir=data_dir,
                db_url=db_url,
                federation_interval=0,
                workers=1,
                rate_limit=600,
            )
            env["OMEGA_SYNC_INTERVAL"] = str(pace)
            server = ServerProcess(
                command,
                env=env,
                base_url=f"http://127.0.0.1:{port}",
                log_path=root / f"replica-{name}.log",
            )
            servers.append(server)
            server.start()
        yield servers, token
    finally:
        for server in servers:
            server.stop()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    devices: int
    interval: float
    steady: float
    after: float
    base: float
    tick: float
    seed: int


async def _drive(
    fleet: list[_Device],
    servers: list[ServerProcess],
    plan: _Plan,
    timeline: _Timeline,
    progress: Progress,
    errors: list[str],
) -> tuple[float, int, int]:
    """Run the fleet, kill replica ``a`` on cue; when it was killed, the failovers made,
    and how many devices needed a ``sync_now`` to empty their outbox."""
    endpoints = [HttpTransport(server.base_url) for server in servers]
    schedule = SyncSchedule(
        interval=plan.interval, base=plan.base, cap=plan.interval, first_delay=plan.interval
    )
    transports, tasks = [], []
    for n, device in enumerate(fleet):
        transport = FailoverTransport(endpoints, start=n % len(endpoints))
        transports.append(transport)
        device.runtime = DeviceRuntime(
            device.brain,
            transport,
            schedule=schedule,
            tick=plan.tick,
            clock=SystemClock(),
            rng=random.Random(plan.seed * 1_000_003 + n),
            on_status=timeline.listener(device, n),
            sync_options={"attestation": device.identity},
        )
        tasks.append(asyncio.create_task(device.runtime.run()))
    try:
        await asyncio.sleep(plan.interval + plan.steady)
        killed = time.monotonic()
        await asyncio.to_thread(servers[0].kill)  # SIGKILL from outside, as a host failure
        progress("killed", {"attempts": len(timeline.attempts)})
        for device in fleet:  # the households watch on
            await asyncio.to_thread(_watch, device.brain, device.clock, device.cells[3:])
        # Two of the runtimes' ticks after the last household watched: what the brains
        # learn from it is in their outboxes before the drain looks.
        settled = time.monotonic() + 2 * plan.tick
        await asyncio.sleep(max(0.0, max(killed + plan.after, settled) - time.monotonic()))
        drained = await _drain(fleet, errors)
    finally:
        for device in fleet:
            if device.runtime is not None:
                device.runtime.stop()
        ends = await asyncio.gather(*tasks, return_exceptions=True)
        for endpoint in endpoints:
            await endpoint.aclose()
    broken = [e for e in ends if isinstance(e, BaseException)]
    if broken:
        raise BenchError(f"{len(broken)} device runtimes stopped on an error: {broken[0]!r}")
    return killed, sum(t.failovers for t in transports), drained


def _window(timeline: _Timeline, killed: float, steady: float) -> dict[str, Any]:
    """The load before the kill, the failed attempts after it, the failure window, and
    each failed device's time until its next success."""
    before = [a for a in timeline.attempts if killed - steady <= a[1] < killed]
    attempts = [a for a in timeline.attempts if a[1] >= killed]
    failed = [a for a in attempts if not a[3]]
    back: dict[int, float] = {}
    hit = {device for _, _, device, _ in failed}
    for _, ended, device, ok in sorted(attempts, key=lambda a: a[1]):
        if ok and device in hit and device not in back:
            back[device] = ended - killed
    gaps = list(back.values())
    return {
        "steady_syncs_per_s": round(len(before) / steady, 1),
        "steady_failed": sum(not ok for _, _, _, ok in before),
        "attempts_after_kill": len(attempts),
        "failed_attempts": len(failed),
        "failure_window_ms": round(1000 * max((e - killed for _, e, _, _ in failed), default=0)),
        "devices_failed": len(hit),
        "devices_recovered": len(back),
        "recovery_max_s": round(max(gaps, default=0.0), 2),
        "recovery_p50_s": round(float(np.median(gaps)), 2) if gaps else 0.0,
    }


def _stored(db_url: str) -> list[tuple[str, str, bytes]]:
    with psycopg.connect(db_url) as conn:
        return [(str(v), str(p), bytes(b)) for v, p, b in conn.execute(STORED_SQL).fetchall()]


def run_failover(
    *,
    devices: int = 200,
    interval: float = 10.0,
    steady: float | None = None,
    after: float | None = None,
    base: float = 0.5,
    tick: float = 5.0,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the fleet through the loss of one of two replicas; see the module docstring.
    ``steady`` and ``after`` default to two intervals each."""
    plan = _Plan(
        devices=devices,
        interval=interval,
        steady=2 * interval if steady is None else steady,
        after=2 * interval if after is None else after,
        base=base,
        tick=tick,
        seed=seed,
    )
    _check(plan)
    report = progress or (lambda event, data: None)
    with tempfile.TemporaryDirectory(prefix="omega-bench-failover-") as tmp:
        root = Path(tmp)
        shared = _shared_catalog(seed)
        maker = Manufacturer.generate("omega-bench-failover", "k1")
        fleet = _open_fleet(root / "tvs", devices, shared, maker, seed)
        report("fleet", {"devices": devices})
        timeline = _Timeline()
        errors: list[str] = []
        try:
            with (
                embedded_postgres(durable=False) as db_url,
                _replicas(root, db_url, pace=interval / 2) as (servers, token),
            ):
                _publish_codebook(servers[0].base_url, token, shared)
                trust_manufacturer(servers[0].base_url, token, maker)
                killed, failovers, drained = asyncio.run(
                    _drive(fleet, servers, plan, timeline, report, errors)
                )
                audit = _audit_rows(_stored(db_url), fleet)
        finally:
            for device in fleet:
                device.brain.close()
    return {
        "devices": devices,
        "replicas": 2,
        **_window(timeline, killed, plan.steady),
        "failovers": failovers,
        **audit,
        "drained_with_sync_now": drained,
        "drain_errors": len(errors),
        **({"drain_error_first": errors[0]} if errors else {}),
        "settings": {
            "interval_s": interval,
            "steady_s": plan.steady,
            "after_s": plan.after,
            "backoff_base_s": base,
            "tick_s": tick,
            "seed": seed,
        },
    }


def _check(plan: _Plan) -> None:
    """Refuse a bad setting in one sentence naming its flag, before anything starts."""
    if plan.devices < 2 or plan.seed < 0:
        raise InputError(f"--devices must be ≥ 2 and --seed ≥ 0, got {plan.devices}, {plan.seed}")
    for name in ("interval", "steady", "after", "base", "tick"):
        value = getattr(plan, name)
        if not (value > 0 and np.isfinite(value)):
            raise InputError(f"--{name} must be a positive number of seconds, got {value!r}")
