"""``omega bench soak``: a fleet at ~70 % of the held rate for N minutes, through faults.

The parts, all real, on loopback:

- ``omega helper serve`` and ``omega serve`` (SQLite in the work directory, or
  ``db_url``) in child processes, wired for two-server reports (the helper's URL and
  shared secret, small batch minimums so reports are counted within a round or two).
  The server runs its federation rounds every ``federation_interval`` seconds: they fold
  the queue into the live set and count the reports with the helper.
- A :class:`~omega.bench.faults.ResetProxy` between every device and the server.
- The load: the server bench's cheap devices made durable, in their own process
  (:mod:`omega.bench.soak_load`), at ``load`` × the held rate.
- ``brains`` real brains in this process (as the fleet-restart bench opens them), each
  kept syncing by a :class:`~omega.sync.DeviceRuntime` with the helper's key pinned (so
  they send two-server reports), their households watching on throughout.

**The held rate** is given (``held_rate``) or measured first by a short step-up probe:
``omega bench server``'s load generator, the same code path, against this server
through the proxy (its own devices; every step ``probe_seconds`` long, p95 ≤
``p95_limit_ms`` and no errors to pass). The report says which.

**Faults**, on a schedule drawn from ``seed`` and printed as they happen: SIGKILL of
``omega serve`` and a restart ``server_down`` seconds later on the same port and data;
bursts of connection resets (``reset_all`` and four cuts at byte offsets each way); a
helper outage (SIGKILL, restart ``helper_down`` seconds later: reports wait in the
server's queue and are counted after it is back).

**At the end** the devices drain (each resends what is unacknowledged until it is,
bounded), rounds fold the queue and count the reports, the server and helper stop, and
:mod:`omega.bench._soak_audit` checks the server's storage against the devices' ledgers.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from omega.bench._soak_audit import META, audit, log_position
from omega.bench._soak_figures import Samples, fault_effects, latency_figures, sync_figures
from omega.bench._soak_parts import Parts, Progress, SoakPlan, probe_held_rate, start_parts
from omega.bench._soak_run import Outcome, fault_schedule, final_rounds, soak
from omega.bench.faults import ResetProxy
from omega.bench.fleet_restart import _open_fleet
from omega.bench.loadgen import fast_loop
from omega.bench.server import DEFAULT_RATES
from omega.errors import ConfigError, InputError
from omega.workspace import work_directory

__all__ = ["run_soak"]


async def _main(plan: SoakPlan, root: Path, say: Progress) -> dict[str, Any]:
    say("setup", {"text": "starting the helper and the server…"})
    parts = await asyncio.to_thread(start_parts, plan, root)
    try:
        async with ResetProxy("127.0.0.1", int(parts.server.base_url.rsplit(":", 1)[1])) as proxy:
            if plan.held_rate is None:
                say("setup", {"text": "probing the held rate…"})
            held, probe = await probe_held_rate(plan, parts, proxy, say)
            rate = round(plan.load * held, 1)
            meta = {
                "db_url": parts.db_url,
                "log_since": await asyncio.to_thread(log_position, parts.db_url),
                "codebook_id": parts.shared.codebook_id,
            }
            (root / META).write_text(json.dumps(meta))
            say("start", {"held": held, "rate": rate, "source": probe["source"]})
            fleet = await asyncio.to_thread(
                _open_fleet, root / "tvs", plan.brains, parts.shared, parts.maker, plan.seed
            )
            try:
                outcome = await soak(plan, parts, proxy, fleet, rate, say)
            finally:
                for device in fleet:
                    device.brain.close()
            resets = len(proxy.resets)
        say("setup", {"text": "final rounds: folding the queue, counting reports…"})
        rounds = await asyncio.to_thread(final_rounds, parts.server.base_url, parts.token)
    finally:
        await asyncio.to_thread(parts.stop)
    say("setup", {"text": "auditing the server's storage…"})
    audited = await asyncio.to_thread(audit, root)
    return _summary(
        plan,
        parts,
        outcome,
        audited,
        held=held,
        probe=probe,
        rate=rate,
        rounds=rounds,
        resets=resets,
    )


def _summary(
    plan: SoakPlan,
    parts: Parts,
    outcome: Outcome,
    audited: dict[str, Any],
    *,
    held: float,
    probe: dict[str, Any],
    rate: float,
    rounds: list[dict[str, Any]],
    resets: int,
) -> dict[str, Any]:
    samples = Samples.load(parts.root / "load-samples.npz", until=outcome.drained_at)
    windows = outcome.faults.windows
    syncs = sync_figures(samples, seconds=outcome.drained_at - outcome.t0, offered=rate)
    syncs["skipped_while_busy"] = outcome.load.get("done", {}).get("skipped")
    events = fault_effects(samples, outcome.faults.events, windows)
    kinds = [e["kind"] for e in events]
    shares = audited["two_server_reports"]
    if outcome.faults.counted_at_helper_return is not None:
        back = outcome.faults.counted_at_helper_return
        shares["counted_after_helper_returned"] = shares["counted"] - back
    drain = _drain(outcome)
    return {
        "ok": _ok(audited, outcome, drain),
        "minutes": plan.minutes,
        "patterns_lost": audited["patterns_lost"],
        "patterns_duplicated": audited["patterns_duplicated"],
        "held_rate_per_s": held,
        "held_rate": probe,
        "offered_per_s": rate,
        "load": plan.load,
        "syncs": syncs,
        "latency_ms": latency_figures(samples, windows, outcome.t0),
        "brains": _brains(plan, outcome),
        "faults": {
            "server_restarts": kinds.count("server-restart"),
            "reset_bursts": kinds.count("resets"),
            "helper_outages": kinds.count("helper-outage"),
            "connection_resets": resets,
            "events": events,
        },
        "audit": {k: audited[k] for k in ("cheap_devices", "brains", "patterns_unexplained")},
        "two_server_reports": shares,
        "drain": drain,
        "final_rounds": rounds,
        "rss_mb": _rss(outcome, parts),
        "machine": {"cores": os.cpu_count(), **outcome.machine},
        "settings": _settings(plan, parts),
    }


def _ok(audited: dict[str, Any], outcome: Outcome, drain: dict[str, Any]) -> bool:
    """Nothing lost, stored twice or unexplained; every device drained; no runtime failed."""
    return (
        audited["patterns_lost"] == 0
        and audited["patterns_duplicated"] == 0
        and audited["patterns_unexplained"] == 0
        and audited["two_server_reports"]["lost"] == 0
        and not outcome.brains_failed
        and drain["load_left_in_flight"] == 0
        and drain["brains_outbox_left"] == 0
        and drain["brains_inflight_left"] == 0
    )


def _drain(outcome: Outcome) -> dict[str, Any]:
    done = outcome.load.get("done", {})
    brains = outcome.brains_drain
    return {
        "load_s": done.get("drain_s"),
        "load_passes": done.get("drain_passes"),
        "load_left_in_flight": done.get("left_in_flight", -1),
        "brains_with_sync_now": brains["drained_with_sync_now"],
        "brains_outbox_left": brains["outbox_left"],
        "brains_inflight_left": brains["inflight_left"],
    }


def _brains(plan: SoakPlan, outcome: Outcome) -> dict[str, Any]:
    attempts = outcome.brains_log.attempts
    return {
        "devices": plan.brains,
        "syncs_ok": sum(ok for _, _, ok in attempts),
        "syncs_failed": sum(not ok for _, _, ok in attempts),
        "runtimes_failed": outcome.brains_failed,
    }


def _rss(outcome: Outcome, parts: Parts) -> dict[str, Any]:
    """Each process at the load's start and once drained (a restarted one is a new
    process: its age says since when), and the most sampled every 5 s."""
    shown: dict[str, Any] = {}
    for name, child in (("server", parts.server), ("helper", parts.helper)):
        shown[name] = {
            "start": outcome.rss_start.get(name),
            "end": outcome.rss_end.get(name),
            "end_process_age_s": round(outcome.drained_at - child.started_at, 1),
            "max": max(outcome.rss.samples[name], default=None),
            "processes": child.starts,
        }
    return shown


def _settings(plan: SoakPlan, parts: Parts) -> dict[str, Any]:
    return {
        "devices": plan.devices,
        "storage": "postgresql" if plan.db_url else "sqlite",
        "federation_interval_s": plan.federation_interval,
        "server_down_s": plan.server_down,
        "helper_down_s": plan.helper_down,
        "share_fraction": plan.share_fraction,
        "share_min_batch": plan.min_batch,
        "brain_interval_s": plan.brain_interval,
        "watch_every_s": plan.watch_every,
        "rate_limit_per_min": parts.rate_limit,
        "connections": plan.connections,
        "seed": plan.seed,
    }


def run_soak(
    *,
    minutes: float = 10.0,
    held_rate: float | None = None,
    load: float = 0.7,
    devices: int = 1000,
    brains: int = 16,
    db_url: str | None = None,
    restarts: int | None = None,
    reset_bursts: int | None = None,
    server_down: float = 5.0,
    helper_down: float | None = None,
    federation_interval: float = 60.0,
    share_fraction: float = 0.02,
    min_batch: int = 10,
    brain_interval: float = 5.0,
    watch_every: float = 10.0,
    probe_rates: tuple[float, ...] = DEFAULT_RATES,
    probe_seconds: float = 5.0,
    p95_limit_ms: float = 50.0,
    connections: int = 32,
    drain_timeout: float = 60.0,
    seed: int = 0,
    work_dir: Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the soak (see the module docstring); returns its report.

    Faults default to a server restart per 200 s and a reset burst per minute (at least
    one of each) and one helper outage of 1.5 rounds (at least 10 s). ``work_dir`` keeps
    every file (the server's data, the ledgers, the logs); default a temporary directory.
    """
    duration = minutes * 60.0
    plan = SoakPlan(
        minutes=minutes,
        held_rate=held_rate,
        load=load,
        devices=devices,
        brains=brains,
        db_url=db_url,
        restarts=max(1, round(duration / 200)) if restarts is None else restarts,
        reset_bursts=max(1, round(duration / 60)) if reset_bursts is None else reset_bursts,
        server_down=server_down,
        helper_down=max(10.0, 1.5 * federation_interval) if helper_down is None else helper_down,
        federation_interval=federation_interval,
        share_fraction=share_fraction,
        min_batch=min_batch,
        brain_interval=brain_interval,
        watch_every=watch_every,
        probe_rates=tuple(sorted(r for r in probe_rates if r > 0)),
        probe_seconds=probe_seconds,
        p95_limit_ms=p95_limit_ms,
        connections=connections,
        drain_timeout=drain_timeout,
        seed=seed,
    )
    _check(plan)
    fault_schedule(plan)  # refuses a schedule that does not fit, before starting anything
    say = progress or (lambda kind, event: None)
    with (
        work_directory(work_dir, "omega-bench-soak-") as root,
        asyncio.Runner(loop_factory=fast_loop()) as runner,
    ):
        return runner.run(_main(plan, root, say))


def _check(plan: SoakPlan) -> None:
    if not (plan.minutes > 0 and 0 < plan.load <= 1):
        raise InputError("--minutes must be > 0 and --load in (0, 1]")
    if plan.devices < 1 or plan.brains < 0 or plan.restarts < 0 or plan.reset_bursts < 0:
        raise InputError("--devices ≥ 1, --brains ≥ 0, --restarts ≥ 0, --reset-bursts ≥ 0")
    if plan.held_rate is not None and not plan.held_rate > 0:
        raise InputError(f"--held-rate must be > 0 syncs/s, got {plan.held_rate}")
    if plan.held_rate is None and not plan.probe_rates:
        raise InputError("no rate to probe: give --held-rate or positive probe rates")
    if plan.federation_interval <= 0:
        raise InputError("--federation-interval must be > 0: rounds count the reports")
    if plan.db_url is not None and not plan.db_url.startswith(("postgresql:", "postgres:")):
        raise ConfigError(
            f"--db must be a postgresql:// URL (default: SQLite), got {plan.db_url!r}"
        )
    if not 0 <= plan.share_fraction <= 1 or plan.min_batch < 1:
        raise InputError("--share-fraction must be in [0, 1] and the batch minimum ≥ 1")
