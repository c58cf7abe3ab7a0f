"""``omega bench connections``: many devices connected at once to one real ``omega serve``
(``omega.bench.connections``)."""

from __future__ import annotations

import typer

from omega.cli._output import emit

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("connections")(connections)


def connections(
    devices: int = typer.Option(10_000, help="Devices, each on a connection of its own."),
    transport: str = typer.Option(
        "http",
        help="http (a keep-alive connection each), grpc (a channel and StreamSync stream "
        "each) or quic (an HTTP/3 connection each).",
    ),
    clients: int | None = typer.Option(
        None, help="Client processes holding the connections (default: one per 2,500)."
    ),
    sync_share: float = typer.Option(0.1, help="Share of the devices that sync meanwhile."),
    rate: float = typer.Option(50.0, help="Their syncs per second, together."),
    seconds: float = typer.Option(20.0, help="Seconds of syncing with every connection open."),
    idle_seconds: float = typer.Option(
        5.0, help="Seconds every connection is held idle first (the server's idle CPU)."
    ),
    interval: float = typer.Option(
        1800.0, help="Devices' sync interval (s) the extrapolation assumes."
    ),
    target: int = typer.Option(100_000, help="Connections per node to extrapolate to."),
    seed: int = typer.Option(0, help="Seed for the devices' patterns and schedules."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Hold DEVICES connections open to one server process while a share of them syncs:
    server memory and file descriptors per connection, CPU, p95, errors, and the
    extrapolation to TARGET connections per node."""
    from omega.bench.connections import run_connections_bench
    from omega.cli._output import err_console
    from omega.errors import InputError

    if idle_seconds < 0 or interval <= 0 or target < 1:
        raise InputError("--idle-seconds must be ≥ 0, --interval > 0 and --target ≥ 1")
    with err_console.status("starting…") as status:
        result = run_connections_bench(
            devices=devices,
            transport=transport,
            clients=clients,
            sync_share=sync_share,
            rate=rate,
            seconds=seconds,
            idle_seconds=idle_seconds,
            interval=interval,
            target=target,
            seed=seed,
            progress=status.update,
        )
    emit(result, as_json=as_json, title="omega bench connections")
