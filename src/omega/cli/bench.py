"""``omega bench``: each command performs the real operation and reports what it measured."""

from __future__ import annotations

import typer

from omega.cli._output import emit

__all__ = ["app"]

app = typer.Typer(
    help=(
        "Benchmarks: each performs the real operation and prints what it measured "
        "(--json for scripts)."
    ),
    no_args_is_help=True,
)


@app.command("sync")
def sync(
    pushes: int = typer.Option(1000, help="Push deltas to build (and as many pulls)."),
    seed: int = typer.Option(0, help="Seed for the synthetic deltas."),
    repeats: int = typer.Option(3, help="Encode/decode passes over every message."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Wire size and codec speed of realistic push and pull deltas (msgpack + zstd)."""
    from omega.protocol.bench import run_sync_bench

    result = run_sync_bench(pushes=pushes, seed=seed, repeats=repeats)
    emit(result, as_json=as_json, title="omega bench sync")
