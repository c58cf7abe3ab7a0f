"""The figures and prices ``omega cost`` starts from, each with where it came from.

Figures are measured on this project's 2-core virtual machine (docs/results.md); a run's
own bench JSON replaces them (``omega cost --figures FILE``). Prices are public list
prices (on-demand, Linux) for one region; flags override each.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FIGURES", "PRICES", "Figure", "Prices"]


@dataclass(frozen=True, slots=True)
class Figure:
    value: float
    source: str


#: What one sync, pattern, report, viewer costs. Keys: ``<figure>`` or
#: ``<figure>.<backend>.<transport>`` for the server's CPU, ``<figure>.<transport>`` for
#: bytes on the wire, ``<figure>.<backend>`` for the database.
FIGURES: dict[str, Figure] = {
    "server_cpu_ms_per_sync.sqlite.http": Figure(
        1.30,
        "docs/results.md: omega bench server --transport http --rates 400,500,600,700 "
        "--step-seconds 8 --json (2026-12-06, 22:39 UTC, machine quiet): 1.298 ms at 500/s",
    ),
    "server_cpu_ms_per_sync.sqlite.grpc": Figure(
        1.475,
        "omega bench server --transport grpc --rates 400,500,600 --step-seconds 8 "
        "(2026-12-06, 22:51 UTC): 1.475 ms at 500/s",
    ),
    "server_cpu_ms_per_sync.sqlite.quic": Figure(
        1.86,
        "omega bench server --transport quic --rates 350,400,450,500 --step-seconds 8 "
        "(2026-12-06, 22:52 UTC): 1.861 ms at 500/s",
    ),
    "server_cpu_ms_per_sync.postgresql.http": Figure(
        1.05,
        "omega bench server --db sqlite,embedded-postgres --rates 300,400,500,600 "
        "--step-seconds 8 (2026-12-06, 22:50 UTC): 1.050 ms at 500/s on PostgreSQL",
    ),
    "server_cpu_ms_per_sync.postgresql.grpc": Figure(
        1.225, "derived: PostgreSQL over HTTP (1.05) + gRPC − HTTP on SQLite (+0.175)"
    ),
    "server_cpu_ms_per_sync.postgresql.quic": Figure(
        1.61, "derived: PostgreSQL over HTTP (1.05) + HTTP/3 − HTTP on SQLite (+0.56)"
    ),
    "db_cpu_ms_per_sync.sqlite": Figure(0.0, "SQLite runs inside the server process"),
    "db_cpu_ms_per_sync.postgresql": Figure(
        1.02,
        "the same PostgreSQL run: PostgreSQL's own processes, 1.024 ms per sync at 500/s "
        "(durable: fsync and synchronous_commit on; rate limits in PostgreSQL too)",
    ),
    "wire_bytes_per_sync.http": Figure(
        2464, "docs/results.md, session 16: TCP payload both ways per sync, HTTP/1.1"
    ),
    "wire_bytes_per_sync.grpc": Figure(1789, "the same run, gRPC"),
    "wire_bytes_per_sync.quic": Figure(2305, "the same run, HTTP/3 (UDP payloads)"),
    "server_kb_per_connection.http": Figure(
        12.79,
        "omega bench connections --devices 10000 --transport http (docs/results.md, "
        "concurrent devices): server RSS growth per open keep-alive connection",
    ),
    "server_kb_per_connection.grpc": Figure(
        42.84, "the same, --transport grpc: a connection with its StreamSync stream open"
    ),
    "server_kb_per_connection.quic": Figure(
        99.17, "the same, --transport quic: an HTTP/3 connection, pinged every 20 s"
    ),
    "patterns_per_sync": Figure(
        1.262,
        "docs/results.md, session 13: omega simulate on ml-latest-small, seed 0: 18,752 "
        "patterns in 14,858 syncs",
    ),
    "reports_per_sync": Figure(
        0.819,
        "docs/results.md: the ml-latest-small replay's 12,173 two-server reports over its "
        "14,858 syncs",
    ),
    "round_cpu_ms_per_pattern": Figure(
        0.01876,
        "docs/results.md: omega bench federation --patterns 100000, session 9: 53,308 "
        "patterns/s on one core (1000 / 53,308 ms)",
    ),
    "leader_cpu_ms_per_report": Figure(
        2.0, "docs/results.md, omega bench shares: ~2 ms per report evaluation, once a round"
    ),
    "helper_cpu_ms_per_report": Figure(
        2.0,
        "docs/results.md, omega bench shares, session 12: the helper evaluates each report "
        "once a round, ~2 ms",
    ),
    "db_bytes_per_viewer": Figure(
        9310.0,
        "omega bench connections --devices 10000 --transport grpc (docs/results.md, "
        "concurrent devices): the SQLite files' growth over 10,000 attested registrations, "
        "WAL included",
    ),
    "db_bytes_per_pending_pattern": Figure(
        358.0,
        "the same run: the files' growth per pattern pushed (22,698) before a round folds it",
    ),
    "pending_hold_s": Figure(
        60.0, "the server's federation_interval: pushed patterns wait at most one round"
    ),
}


@dataclass(frozen=True, slots=True)
class Prices:
    """One region's list prices (USD) and where they came from."""

    vcpu_hour: float
    #: Memory that comes with each vCPU of the server instances (GB).
    gb_per_vcpu: float
    db_vcpu_hour: float
    storage_gb_month: float
    #: Internet egress per GB by tier: (GB in the tier, or None for the rest; price).
    egress_tiers: tuple[tuple[float | None, float], ...]
    sources: dict[str, str]


PRICES: dict[str, Prices] = {
    "us-east-1": Prices(
        vcpu_hour=0.0408,
        gb_per_vcpu=4.0,
        db_vcpu_hour=0.0408,
        storage_gb_month=0.115,
        egress_tiers=((10_240, 0.09), (40_960, 0.085), (102_400, 0.07), (None, 0.05)),
        sources={
            "vcpu_hour": "AWS EC2 on-demand, Linux, us-east-1: m7g.large (2 vCPU) $0.0816/h "
            "(June 2026, factualminds.com 'Amazon EC2 On-Demand Pricing … (2026)')",
            "gb_per_vcpu": "m7g.large: 8 GiB for 2 vCPU",
            "db_vcpu_hour": "PostgreSQL self-managed on the same instances (a managed RDS "
            "instance costs about twice as much per vCPU)",
            "storage_gb_month": "Amazon RDS gp3 storage, us-east-1, $0.115/GB-month (June "
            "2026, usage.ai RDS pricing guide, citing aws.amazon.com/rds/pricing)",
            "egress": "AWS data transfer out to the internet, us-east-1, list tiers: first "
            "10 TB $0.09/GB, next 40 TB $0.085, next 100 TB $0.07, over 150 TB $0.05 "
            "(aws.amazon.com/ec2/pricing/on-demand; not re-checked 2026-12-06: verify)",
        },
    ),
}
