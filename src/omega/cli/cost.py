"""``omega cost``: the monthly cost of a fleet from measured figures and stated prices
(``omega.bench.cost``; docs/cost.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from omega.cli._output import emit, emit_rows

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("cost")(cost)


def cost(
    viewers: int = typer.Option(..., help="TVs in the fleet."),
    sync_interval: float = typer.Option(
        ..., help="Seconds between a TV's syncs (the device runtime's default: 1800)."
    ),
    region: str = typer.Option("us-east-1", help="Whose list prices (known: us-east-1)."),
    backend: str = typer.Option("postgresql", help="Storage: postgresql or sqlite."),
    transport: str = typer.Option("http", help="The devices' door: http, grpc or quic."),
    utilisation: float = typer.Option(
        0.5, help="Share of each vCPU used on average (room for the evening peak)."
    ),
    held: float = typer.Option(
        0.0, help="Share of the TVs that keep a connection open between syncs (0 to 1)."
    ),
    figures: list[Path] = typer.Option(
        [],
        help="A bench's JSON (omega bench server --json) or {figure: number}, replacing "
        "the shipped figures; repeat for several.",
    ),
    vcpu_hour: float | None = typer.Option(None, help="USD per vCPU-hour (servers)."),
    db_vcpu_hour: float | None = typer.Option(None, help="USD per vCPU-hour (PostgreSQL)."),
    storage_gb_month: float | None = typer.Option(
        None, help="USD per GB-month of PostgreSQL storage."
    ),
    egress_per_gb: float | None = typer.Option(
        None, help="USD per GB to the internet, flat (default: the region's tiers)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The monthly cost of the constellation, workers, helper and database for VIEWERS
    TVs syncing every SYNC_INTERVAL seconds, line by line with the arithmetic, and the
    line that dominates."""
    from omega.bench.cost import estimate_cost, load_figures

    result = estimate_cost(
        viewers=viewers,
        sync_interval=sync_interval,
        region=region,
        backend=backend,
        transport=transport,
        utilisation=utilisation,
        held=held,
        figures=load_figures(figures),
        prices={
            "vcpu_hour": vcpu_hour,
            "db_vcpu_hour": db_vcpu_hour,
            "storage_gb_month": storage_gb_month,
            "egress_per_gb": egress_per_gb,
        },
    )
    if as_json:
        emit(result, as_json=True)
        return
    emit_rows(
        [
            {
                "component": line["component"],
                "vCPUs": line["vcpus"] if line["vcpus"] is not None else "",
                "USD/month": f"{line['usd_month']:,.2f}",
                "arithmetic": line["arithmetic"],
            }
            for line in result["lines"]
        ],
        as_json=False,
        title=f"omega cost: {viewers:,} TVs, a sync every {sync_interval:g} s "
        f"({result['syncs_per_s']:,} syncs/s), {backend} over {transport}, {region}",
    )
    emit(
        {
            "total USD/month": f"{result['total_usd_month']:,.2f}",
            "USD per TV-month": result["usd_per_viewer_month"],
            "bottleneck": result["bottleneck"],
        },
        as_json=False,
    )
