"""``omega bench sync-path``: the server CPU of one ``/sync`` in process
(``omega.bench.sync_path``)."""

from __future__ import annotations

import typer

from omega.cli._output import emit

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("sync-path")(sync_path)


def sync_path(
    viewers: int = typer.Option(200, min=1, help="Devices registered, syncing in turn."),
    syncs: int = typer.Option(1500, min=1, help="Syncs in each timed round."),
    rounds: int = typer.Option(3, min=1, help="Timed rounds (after a warm-up of 300 syncs)."),
    in_flight: int = typer.Option(16, min=1, help="Syncs in flight at once."),
    seed: int = typer.Option(0, help="Seed for the devices' patterns and requests."),
    digest: bool = typer.Option(
        False, help="Hash every decoded answer: equal digests, equal answers (two builds)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """CPU per sync of the constellation's app on a temporary SQLite directory, syncs
    shaped as ``omega bench server``'s sent through its ASGI door: no network, no load
    generator in the figure (every thread's CPU, the SQLite writer's included)."""
    from omega.bench.sync_path import run_sync_path_bench
    from omega.cli._output import err_console

    with err_console.status(f"{rounds} rounds of {syncs} syncs…"):
        result = run_sync_path_bench(
            viewers=viewers,
            syncs=syncs,
            rounds=rounds,
            in_flight=in_flight,
            seed=seed,
            digest=digest,
        )
    emit(result, as_json=as_json, title="omega bench sync-path")
