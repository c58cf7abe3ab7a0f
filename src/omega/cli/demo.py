"""``omega demo``: the README's main command — a whole federated fleet on embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from omega.cli import _simulation as simulation
from omega.cli._output import JsonOption, console
from omega.errors import ConfigError

__all__ = ["register"]


def demo(
    dataset: Annotated[
        Path | None, typer.Option(help="Run on a MovieLens directory instead of synthetic viewers.")
    ] = None,
    viewers: Annotated[int, typer.Option(help="Synthetic viewers (one TV each).")] = 200,
    titles: Annotated[int, typer.Option(help="Synthetic catalog size.")] = 1500,
    days: Annotated[int, typer.Option(help="Simulated days of viewing.")] = 14,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    report: Annotated[
        Path | None, typer.Option(help="Also write report.json, report.md and plots here.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Generate a catalog and viewers with latent tastes and daily habits, start an embedded
    constellation (SQLite), run every TV's brain for a few simulated days — learning on the
    device, pushing patterns, federating, pulling — and print the quality table and sync
    sizes. Needs no dataset and no server software."""
    from omega.sim.datasets import load_dataset
    from omega.sim.fleet import FleetConfig
    from omega.sim.simulate import SimulationOptions
    from omega.sim.viewers import synthetic_dataset

    if viewers < 3 or titles < 20 or days < 1:
        raise ConfigError("the demo needs --viewers ≥ 3, --titles ≥ 20 and --days ≥ 1")
    simulation.check_report(report)
    if dataset is not None:
        data = load_dataset(dataset)
        fleet = FleetConfig(seed=seed)
        baselines: tuple[str, ...] = ("popularity", "item_knn", "als", "transitions")
    else:
        data = synthetic_dataset(titles=titles, viewers=viewers, days=days, seed=seed)
        # A few days of viewing at ~2 titles a day: sync and federate at that pace.
        fleet = FleetConfig(
            cells=128,
            sync_every=4,
            sync_gap_s=6 * 3600.0,
            round_every_s=12 * 3600.0,
            round_min_pushes=3,
            seed=seed,
            share_min_batch=100,  # a few hundred TVs send a few hundred reports
        )
        baselines = ("popularity", "transitions")
    options = SimulationOptions(
        seed=seed,
        fleet=fleet,
        baselines=baselines,
        checkpoints=5,
        cache_dir=simulation.cache_dir(),
    )
    result = simulation.run_with_progress(data, options, quiet=as_json)
    simulation.write_report(result, report)
    if as_json:
        simulation.emit_json(result)
        return
    console.print(
        f"[bold]Omega demo[/]: {result['viewers']} TVs, {result['events']} events, "
        f"{result['syncs']} syncs, {result['rounds']} federation rounds, "
        f"{result['released_patterns']} patterns released, {result['wall_s']:.0f} s"
    )
    simulation.show(result)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
