"""``omega cost``: what a fleet of N viewers costs a month, from measured figures and
stated prices.

:func:`estimate_cost` is arithmetic only: ``viewers / sync_interval`` syncs a second,
each costing the server CPU, database CPU, bytes on the wire, patterns and two-server
reports the benches measured (:data:`~omega.bench._cost_defaults.FIGURES`, or a run's own
bench JSON through :func:`load_figures`); CPU is provisioned at ``utilisation`` of each
vCPU (the fleet does not sync evenly over a day), priced by the vCPU-hour, storage by the
GB-month and egress by the GB in the region's tiers. Every line carries its arithmetic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from omega.bench._cost_defaults import FIGURES, PRICES, Figure, Prices
from omega.errors import ConfigError, InputError

__all__ = ["BACKENDS", "HOURS_PER_MONTH", "TRANSPORTS", "estimate_cost", "load_figures"]

HOURS_PER_MONTH = 730.0  # the cloud's billing month
_SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
BACKENDS = ("postgresql", "sqlite")
TRANSPORTS = ("http", "grpc", "quic")
#: vCPUs of the largest common single PostgreSQL primary (db.m7g.16xlarge): past it, the
#: database must be sharded by viewer (docs/storage.md).
MAX_DB_VCPUS = 64


@dataclass(frozen=True, slots=True)
class _Line:
    component: str
    vcpus: float | None
    usd_month: float
    arithmetic: str


def estimate_cost(
    *,
    viewers: int,
    sync_interval: float,
    region: str = "us-east-1",
    backend: str = "postgresql",
    transport: str = "http",
    utilisation: float = 0.5,
    held: float = 0.0,
    figures: Mapping[str, Figure] | None = None,
    prices: Mapping[str, float | None] | None = None,
) -> dict[str, Any]:
    """The monthly cost of ``viewers`` TVs syncing every ``sync_interval`` seconds, a
    share ``held`` of them keeping a connection open between syncs.

    ``prices``: overrides of the region's ``vcpu_hour``, ``db_vcpu_hour``,
    ``storage_gb_month`` and ``egress_per_gb`` (a flat price instead of the tiers); None
    values keep the region's."""
    _check(viewers, sync_interval, utilisation, backend, transport)
    if not 0 <= held <= 1:
        raise InputError(f"--held must be in [0, 1], got {held:g}")
    price = _prices(region, prices or {})
    f = {**FIGURES, **(figures or {})}

    def v(name: str) -> float:
        return f[name].value

    rate = viewers / sync_interval
    server_ms = v(f"server_cpu_ms_per_sync.{backend}.{transport}")
    db_ms = v(f"db_cpu_ms_per_sync.{backend}")
    patterns = rate * v("patterns_per_sync")
    reports = rate * v("reports_per_sync")
    worker_ms_s = patterns * v("round_cpu_ms_per_pattern") + reports * v("leader_cpu_ms_per_report")
    connections = viewers * held
    lines = [
        _constellation_line(
            rate,
            server_ms,
            connections,
            v(f"server_kb_per_connection.{transport}"),
            price,
            utilisation,
        ),
        _cpu_line(
            "workers",
            worker_ms_s,
            f"{patterns:,.1f} patterns/s × {v('round_cpu_ms_per_pattern')} ms + "
            f"{reports:,.1f} reports/s × {v('leader_cpu_ms_per_report')} ms",
            price.vcpu_hour,
            utilisation,
        ),
        _cpu_line(
            "helper",
            reports * v("helper_cpu_ms_per_report"),
            f"{reports:,.1f} reports/s × {v('helper_cpu_ms_per_report')} ms",
            price.vcpu_hour,
            utilisation,
        ),
        _cpu_line(
            "database CPU",
            rate * db_ms,
            f"{rate:,.1f} syncs/s × {db_ms} ms",
            price.db_vcpu_hour,
            utilisation,
        ),
        _storage_line(viewers, patterns, f, price),
        _egress_line(rate, v(f"wire_bytes_per_sync.{transport}"), price),
    ]
    total = sum(line.usd_month for line in lines)
    db_vcpus = lines[3].vcpus or 0.0  # the "database CPU" line
    return {
        "viewers": viewers,
        "sync_interval_s": sync_interval,
        "syncs_per_s": round(rate, 2),
        "region": region,
        "backend": backend,
        "transport": transport,
        "utilisation": utilisation,
        "held_connections": round(connections),
        "lines": [
            {
                "component": line.component,
                "vcpus": None if line.vcpus is None else round(line.vcpus, 3),
                "usd_month": round(line.usd_month, 2),
                "arithmetic": line.arithmetic,
            }
            for line in lines
        ],
        "total_usd_month": round(total, 2),
        "usd_per_viewer_month": round(total / viewers, 6),
        "bottleneck": _bottleneck(lines, total, db_vcpus),
        "prices": {
            "vcpu_hour": price.vcpu_hour,
            "db_vcpu_hour": price.db_vcpu_hour,
            "storage_gb_month": price.storage_gb_month,
            "egress_tiers_per_gb": [list(t) for t in price.egress_tiers],
            "sources": price.sources,
        },
        "figures": {name: {"value": fig.value, "source": fig.source} for name, fig in f.items()},
    }


def _check(
    viewers: int, sync_interval: float, utilisation: float, backend: str, transport: str
) -> None:
    if viewers < 1:
        raise InputError(f"--viewers must be a whole number ≥ 1, got {viewers}")
    if not sync_interval > 0:
        raise InputError(f"--sync-interval must be > 0 seconds, got {sync_interval:g}")
    if not 0 < utilisation <= 1:
        raise InputError(f"--utilisation must be in (0, 1], got {utilisation:g}")
    if backend not in BACKENDS:
        raise InputError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if transport not in TRANSPORTS:
        raise InputError(f"--transport must be one of {', '.join(TRANSPORTS)}, got {transport!r}")


def _prices(region: str, overrides: Mapping[str, float | None]) -> Prices:
    base = PRICES.get(region)
    if base is None:
        known = ", ".join(sorted(PRICES))
        raise InputError(
            f"--region {region!r} has no stated prices (known: {known}); give --vcpu-hour, "
            "--db-vcpu-hour, --storage-gb-month and --egress-per-gb with a known region"
        )
    changed: dict[str, Any] = {}
    sources = dict(base.sources)
    for name, value in overrides.items():
        if value is None:
            continue
        if value < 0:
            raise InputError(f"--{name.replace('_', '-')} must be ≥ 0, got {value:g}")
        if name == "egress_per_gb":
            changed["egress_tiers"] = ((None, value),)
            sources["egress"] = "--egress-per-gb (flat)"
        else:
            changed[name] = value
            sources[name] = f"--{name.replace('_', '-')}"
    return replace(base, **changed, sources=sources)


def _cpu_line(
    component: str, ms_per_s: float, how: str, vcpu_hour: float, utilisation: float
) -> _Line:
    """CPU milliseconds needed each second → vCPUs at ``utilisation`` → dollars."""
    vcpus = ms_per_s / 1000 / utilisation
    usd = vcpus * vcpu_hour * HOURS_PER_MONTH
    arithmetic = (
        f"{how} = {ms_per_s / 1000:,.3f} cores / {utilisation:g} = {vcpus:,.3f} vCPU × "
        f"${vcpu_hour:g}/h × {HOURS_PER_MONTH:g} h = ${usd:,.2f}"
    )
    return _Line(component, vcpus, usd, arithmetic)


def _constellation_line(
    rate: float,
    server_ms: float,
    connections: float,
    kb_per_connection: float,
    price: Prices,
    utilisation: float,
) -> _Line:
    """The servers: vCPUs for the syncs' CPU, or for the memory of the connections held
    open (each vCPU comes with ``gb_per_vcpu``), whichever is more."""
    line = _cpu_line(
        "constellation",
        rate * server_ms,
        f"{rate:,.1f} syncs/s × {server_ms} ms",
        price.vcpu_hour,
        utilisation,
    )
    if not connections:
        return line
    gb = connections * kb_per_connection * 1024 / 1e9
    vcpus = gb / price.gb_per_vcpu / utilisation
    said = (
        f"; memory: {connections:,.0f} held connections × {kb_per_connection:g} KB = "
        f"{gb:,.1f} GB / {price.gb_per_vcpu:g} GB per vCPU / {utilisation:g} = {vcpus:,.3f} vCPU"
    )
    if vcpus <= (line.vcpus or 0.0):
        return replace(line, arithmetic=line.arithmetic + said + " (CPU decides)")
    usd = vcpus * price.vcpu_hour * HOURS_PER_MONTH
    said += f" (memory decides) × ${price.vcpu_hour:g}/h × {HOURS_PER_MONTH:g} h = ${usd:,.2f}"
    return _Line("constellation (memory)", vcpus, usd, line.arithmetic + said)


def _storage_line(
    viewers: int, patterns_per_s: float, f: Mapping[str, Figure], price: Prices
) -> _Line:
    viewer_b = f["db_bytes_per_viewer"].value
    pattern_b = f["db_bytes_per_pending_pattern"].value
    pending = patterns_per_s * f["pending_hold_s"].value
    gb = (viewers * viewer_b + pending * pattern_b) / 1e9
    usd = gb * price.storage_gb_month
    arithmetic = (
        f"({viewers:,} viewers × {viewer_b:g} B + {pending:,.0f} pending patterns × "
        f"{pattern_b:g} B) = {gb:,.3f} GB × ${price.storage_gb_month:g} = ${usd:,.2f}"
    )
    return _Line("database storage", None, usd, arithmetic)


def _egress_line(rate: float, bytes_per_sync: float, price: Prices) -> _Line:
    """Every byte of a sync, both ways, charged as egress: an upper bound (ingress is
    free, and a push is about half a sync's bytes)."""
    gb = rate * _SECONDS_PER_MONTH * bytes_per_sync / 1e9
    usd, left, parts = 0.0, gb, []
    for size, per_gb in price.egress_tiers:
        taken = left if size is None else min(left, size)
        usd += taken * per_gb
        left -= taken
        if taken > 0:
            parts.append(f"{taken:,.0f} GB × ${per_gb:g}")
        if left <= 0:
            break
    arithmetic = (
        f"{rate:,.1f} syncs/s × {_SECONDS_PER_MONTH:,.0f} s × {bytes_per_sync:g} B = "
        f"{gb:,.0f} GB: {' + '.join(parts) or '0'} = ${usd:,.2f}"
    )
    return _Line("egress", None, usd, arithmetic)


def _bottleneck(lines: list[_Line], total: float, db_vcpus: float) -> str:
    largest = max(lines, key=lambda line: line.usd_month)
    share = largest.usd_month / total if total else 0.0
    said = f"{largest.component}: {share:.0%} of the cost"
    if db_vcpus > MAX_DB_VCPUS:
        said += (
            f"; the database needs {db_vcpus:,.0f} vCPUs, more than one PostgreSQL primary "
            f"({MAX_DB_VCPUS}): shard it by viewer (hash partitions, Citus; docs/storage.md)"
        )
    return said


def load_figures(paths: list[Path]) -> dict[str, Figure]:
    """Figures from bench JSON files (``omega bench server``'s, alone or ``{"runs": …}``)
    or plain ``{"<figure name>": number}`` objects; ConfigError names the file at fault."""
    found: dict[str, Figure] = {}
    for path in paths:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--figures {path}: not a readable JSON file ({exc})") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"--figures {path}: expected a JSON object")
        found.update(_from_doc(doc, path))
    return found


def _from_doc(doc: dict[str, Any], path: Path) -> dict[str, Figure]:
    if "runs" in doc or "steps" in doc:
        runs = doc.get("runs", [doc])
        found: dict[str, Figure] = {}
        for run in runs:
            found.update(_from_server_run(run, path))
        return found
    found = {}
    for name, value in doc.items():
        if name not in FIGURES:
            raise ConfigError(f"--figures {path}: unknown figure {name!r}")
        if not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"--figures {path}: {name} must be a number ≥ 0, got {value!r}")
        found[name] = Figure(float(value), f"--figures {path}")
    return found


def _from_server_run(run: Mapping[str, Any], path: Path) -> dict[str, Figure]:
    """An ``omega bench server --json`` run's CPU and bytes per sync."""
    backend = "postgresql" if str(run.get("storage", "")).startswith("postgresql") else "sqlite"
    transport = run.get("transport", "http")
    where = f"--figures {path} (omega bench server, {backend}, {transport})"
    found = {}
    for key, name in (
        ("server_cpu_ms_per_sync", f"server_cpu_ms_per_sync.{backend}.{transport}"),
        ("db_cpu_ms_per_sync", f"db_cpu_ms_per_sync.{backend}"),
        ("wire_bytes_per_sync", f"wire_bytes_per_sync.{transport}"),
    ):
        value = run.get(key)
        if isinstance(value, (int, float)) and name in FIGURES:
            found[name] = Figure(float(value), where)
    return found
