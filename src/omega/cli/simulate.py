"""``omega simulate``: replay real viewing logs through a federated fleet and judge it."""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from omega.cli import _simulation as simulation
from omega.cli._output import JsonOption, console
from omega.errors import ConfigError
from omega.workspace import work_directory

if TYPE_CHECKING:
    from omega.sim.datasets import Dataset
    from omega.sim.simulate import SimulationOptions

__all__ = ["dataset_path", "register"]


def simulate(
    dataset: Annotated[
        Path | None,
        typer.Option(
            help="MovieLens directory (ml-latest or ml-100k layout); default $OMEGA_DATASET."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Makes a run reproducible.")] = 0,
    cells: Annotated[int, typer.Option(help="Content cells in the codebook patterns name.")] = 256,
    sync_every: Annotated[int, typer.Option(help="A TV syncs after this many events…")] = 10,
    sync_hours: Annotated[
        float, typer.Option(help="…or once this many simulated hours passed.")
    ] = 24.0,
    round_days: Annotated[
        float, typer.Option(help="Simulated days between federation rounds.")
    ] = 7.0,
    server: Annotated[
        str | None, typer.Option(help="A running `omega serve` URL (default: in-process).")
    ] = None,
    admin_token: Annotated[
        str | None, typer.Option(help="Admin token for --server (or $OMEGA_ADMIN_TOKEN).")
    ] = None,
    attack: Annotated[
        str | None, typer.Option(help="sign-flip | scale | constant | promote-item")
    ] = None,
    attackers: Annotated[float, typer.Option(help="Share of viewers attacking.")] = 0.33,
    reports: Annotated[
        str,
        typer.Option(
            help="Popularity reports: 'shared' (two-server: the constellation and a helper "
            "count exact titles, neither sees one; a helper starts in-process) or 'ldp' "
            "(ε-LDP OLH reports, one server)."
        ),
    ] = "shared",
    report_epsilon: Annotated[
        float,
        typer.Option(
            help="ε of each TV's local-DP popularity report with --reports ldp (one per "
            "push; 0: no reports of either kind). A viewer's reports compose to k·ε."
        ),
    ] = 8.0,
    shared_epsilon: Annotated[
        float,
        typer.Option(
            help="With --reports shared: the noise ε each server adds per report, and what "
            "a report costs a TV's budget."
        ),
    ] = 4.0,
    share_min_batch: Annotated[
        int, typer.Option(help="With --reports shared: reports counted at once, at least.")
    ] = 500,
    helper_url: Annotated[
        str | None,
        typer.Option(help="With --server and --reports shared: the helper that server uses."),
    ] = None,
    report_budget: Annotated[
        float,
        typer.Option(
            help="The most ε a TV's reports may spend per --report-window-days (0: no cap)."
        ),
    ] = 160.0,
    report_window_days: Annotated[
        float, typer.Option(help="The window the report budget renews over.")
    ] = 365.0,
    cowatch: Annotated[
        str,
        typer.Option(
            help="Co-watch knowledge for Omega's fleet: 'off', 'private' (the TVs contribute "
            "through the private protocol: helper, OPRF, k ≥ 3 TVs; docs/cowatch.md), or "
            "'central-k3' (a centralised stand-in for the private release: pairs backed by "
            "≥ 3 TVs, train split only)."
        ),
    ] = "off",
    cowatch_per_epoch: Annotated[
        int,
        typer.Option(help="With --cowatch private: pairs a TV contributes per epoch, at most."),
    ] = 128,
    cowatch_epoch_days: Annotated[
        float, typer.Option(help="With --cowatch private: a co-watch epoch, in simulated days.")
    ] = 7.0,
    cowatch_epsilon: Annotated[
        float,
        typer.Option(
            help="With --cowatch private: what one contributed pair costs a TV's report "
            "budget (0: the --shared-epsilon of a report)."
        ),
    ] = 0.25,
    cowatch_dp_epsilon: Annotated[
        float,
        typer.Option(
            help="With --cowatch private: central DP on the released counts, ε of each "
            "private release (0: off; the report's cowatch.dp has the ledger)."
        ),
    ] = 0.0,
    cowatch_dp_delta: Annotated[
        float, typer.Option(help="With --cowatch-dp-epsilon: δ of each private release.")
    ] = 1e-6,
    cowatch_spread: Annotated[
        float,
        typer.Option(
            help="The spread rule: a co-watch neighbour counts at most this many times its "
            "own best count as a source, else the pair is dropped (0: off). Applied by the "
            "brains (BrainConfig.cowatch_spread) and, with --cowatch private, by the "
            "constellation's release too (its cowatch_spread setting)."
        ),
    ] = 0.0,
    cowatch_attack: Annotated[
        str,
        typer.Option(
            help="With --attack promote-item and co-watch: what the coalition contributes, "
            "'forge' (pairs from popular titles to its target) or 'withhold' (no pairs: "
            "the control for what losing its honest pairs alone costs)."
        ),
    ] = "forge",
    no_als: Annotated[
        bool, typer.Option("--no-als", help="Skip the ALS and item-kNN references.")
    ] = False,
    report: Annotated[
        Path | None, typer.Option(help="Write report.json, report.md and PNG plots here.")
    ] = None,
    validation: Annotated[
        bool,
        typer.Option(
            "--validation",
            help="Hold out each viewer's second-to-last interaction and drop the last: tune "
            "settings on this, report figures from the default run.",
        ),
    ] = False,
    cold_start: Annotated[
        int,
        typer.Option(
            help="Viewers held out of a second federated fleet for the cold-start curve: "
            "each replays its first 10 events on a new TV that joins that fleet (0: none; "
            "the second fleet costs about one more replay).",
        ),
    ] = 0,
    work_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the fleets' brains live (default: a temporary directory). A "
            "replay's brains are kept in a directory given here and removed from the "
            "temporary one at the end; a synthetic fleet's (--tvs) are removed either way."
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="local, or dask (the dask extra): the dataset replay's brains in batches per "
            "task on a Dask cluster, with the local engine's figures; or with --tvs, a "
            "synthetic fleet against a real `omega serve`."
        ),
    ] = "local",
    tvs: Annotated[
        int, typer.Option(help="Run a synthetic fleet of this many TVs instead of a dataset.")
    ] = 0,
    days: Annotated[int, typer.Option(help="Simulated days of the synthetic fleet.")] = 1,
    batch: Annotated[int, typer.Option(help="TVs per engine task, at most.")] = 500,
    address: Annotated[
        str | None, typer.Option(help="An existing Dask scheduler (tcp://host:8786).")
    ] = None,
    engine_workers: Annotated[
        int, typer.Option(help="Worker processes of the Dask cluster started here.")
    ] = 2,
    fsync: Annotated[
        bool,
        typer.Option(
            "--fsync",
            help="The simulated TVs and constellation wait for the disk on durable commits, "
            "as real ones do (~7 fsyncs per sync: minutes of a replay on a busy disk). "
            "Off by default: a replay's files are thrown away.",
        ),
    ] = False,
    processes: Annotated[
        int | None,
        typer.Option(
            help="With --engine local: 2 runs the baselines, the local-only fleet and (with "
            "--attack) the attacked fleet in a second process beside Omega's, and Omega's "
            "constellation and helper in a child process of their own (except with "
            "--cowatch private); the same figures. 1: everything in this process, one "
            "after the other. Default: 2 on a machine with two cores or more."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Replay each viewer's ratings as TV events through one brain per viewer, syncing with a
    real constellation; rank every unseen title for each viewer's held-out last interaction
    and compare Omega with popularity, local-only, ALS, item-kNN, co-watch transitions and
    co-watch within a window (all, and only pairs ≥ 3 viewers share).

    \f
    Long only by its options: each is one annotated parameter, as Typer reads them."""
    from omega.federation.cowatch_dp import CowatchPrivacy, check_privacy
    from omega.sim.attacks import ATTACKS
    from omega.sim.datasets import load_dataset
    from omega.sim.fleet import FleetConfig
    from omega.sim.simulate import SimulationOptions

    if engine not in ("local", "dask"):
        raise ConfigError(f"--engine must be local or dask, got {engine!r}")
    if tvs:
        _fleet_day(
            tvs, days, engine, address, engine_workers, batch, cells, seed, work_dir, as_json
        )
        return
    if engine == "dask" and (attack is not None or cowatch != "off" or cold_start):
        raise ConfigError(
            "--engine dask replays without --attack, --cowatch and --cold-start: use "
            "--engine local for those"
        )
    if processes is None:
        processes = 2 if len(os.sched_getaffinity(0)) >= 2 else 1
    if processes not in (1, 2):
        raise ConfigError("--processes must be 1 or 2")
    if batch < 1 or engine_workers < 1:
        raise ConfigError("--batch and --engine-workers must be ≥ 1")
    if address is not None and engine != "dask":
        raise ConfigError("--address needs --engine dask")
    path = dataset_path(dataset)
    if attack is not None and attack not in ATTACKS:
        raise ConfigError(f"--attack must be one of {', '.join(ATTACKS)}")
    if cells < 2 or sync_every < 1 or sync_hours <= 0 or round_days <= 0:
        raise ConfigError("--cells ≥ 2, --sync-every ≥ 1, --sync-hours > 0 and --round-days > 0")
    if not 0.0 <= report_epsilon <= 20.0:
        raise ConfigError("--report-epsilon must be in [0, 20] (0 sends no reports)")
    if reports not in ("shared", "ldp"):
        raise ConfigError("--reports must be 'shared' or 'ldp'")
    if cowatch not in ("off", "central-k3", "private"):
        raise ConfigError("--cowatch must be 'off', 'private' or 'central-k3'")
    if cowatch_attack not in ("forge", "withhold"):
        raise ConfigError("--cowatch-attack must be 'forge' or 'withhold'")
    if not 0 <= cowatch_spread <= 100:
        raise ConfigError("--cowatch-spread must be in 0..100 (0: off)")
    if not 1 <= cowatch_per_epoch <= 1000 or cowatch_epoch_days * 86400 < 60:
        raise ConfigError(
            "--cowatch-per-epoch must be in 1..1000 and --cowatch-epoch-days at least a minute"
        )
    if not 0.0 <= cowatch_epsilon <= 20.0:
        raise ConfigError("--cowatch-epsilon must be in [0, 20] (0: --shared-epsilon)")
    check_privacy(cowatch_dp_epsilon, cowatch_dp_delta)
    if cowatch_dp_epsilon and cowatch != "private":
        raise ConfigError("--cowatch-dp-epsilon needs --cowatch private")
    if cowatch_dp_epsilon:
        CowatchPrivacy(cowatch_dp_epsilon, cowatch_dp_delta, per_epoch=cowatch_per_epoch)
    if not 0.0 < shared_epsilon <= 20.0:
        raise ConfigError("--shared-epsilon must be in (0, 20]")
    if not 1 <= share_min_batch <= 2500:
        raise ConfigError("--share-min-batch must be in 1..2500")
    if cold_start < 0:
        raise ConfigError("--cold-start must be ≥ 0 (0: no cold-start curve)")
    if report_budget < 0 or report_window_days <= 0:
        raise ConfigError("--report-budget must be ≥ 0 (0: no cap) and --report-window-days > 0")
    simulation.check_report(report)  # fail now, not after a ten-minute replay
    data = load_dataset(path)
    options = SimulationOptions(
        seed=seed,
        fleet=FleetConfig(
            cells=cells,
            sync_every=sync_every,
            sync_gap_s=sync_hours * 3600,
            round_every_s=round_days * 86400,
            seed=seed,
            report_epsilon=report_epsilon,
            report_budget=report_budget,
            report_window_s=report_window_days * 86400,
            reports="shared" if reports == "shared" else "ldp",
            shared_epsilon=shared_epsilon,
            share_min_batch=share_min_batch,
            cowatch="central-k3"
            if cowatch == "central-k3"
            else "private"
            if cowatch == "private"
            else "off",
            cowatch_per_epoch=cowatch_per_epoch,
            cowatch_epoch_s=cowatch_epoch_days * 86400,
            cowatch_spread=cowatch_spread,
            cowatch_attack="withhold" if cowatch_attack == "withhold" else "forge",
            cowatch_epsilon=cowatch_epsilon or None,
            cowatch_dp_epsilon=cowatch_dp_epsilon,
            cowatch_dp_delta=cowatch_dp_delta,
            fsync=fsync,
        ),
        server=server,
        helper_url=helper_url,
        admin_token=admin_token or os.environ.get("OMEGA_ADMIN_TOKEN"),
        attack=attack,
        attackers=attackers,
        baselines=("popularity", "transitions", "cowatch", "cowatch_k3")
        if no_als
        else ("popularity", "item_knn", "als", "transitions", "cowatch", "cowatch_k3"),
        work_dir=work_dir,
        validation=validation,
        cold_start=cold_start,
        cache_dir=simulation.cache_dir(),
        processes=processes,
    )
    result = _replay(data, options, engine, address, engine_workers, batch, as_json)
    written = simulation.write_report(result, report)
    if written and not as_json:
        console.print(f"report written: {', '.join(str(p) for p in written)}")
    if as_json:
        simulation.emit_json(result)
    else:
        simulation.show(result)


def _replay(
    data: Dataset,
    options: SimulationOptions,
    engine: str,
    address: str | None,
    workers: int,
    batch: int,
    as_json: bool,
) -> dict[str, Any]:
    """The dataset replay, here or (``--engine dask``) on a Dask cluster closed after it."""
    # SIGTERM unwinds like Ctrl-C, so the servers (and the cluster) are stopped and the
    # temporary brains removed on the way out.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if engine == "local":
            return simulation.run_with_progress(data, options, quiet=as_json)
        from omega.federation.engines import DaskEngine
        from omega.sim.engine_replay import EngineReplay

        # The brains' directory outlives the cluster: stopped mid-task (Ctrl-C), its
        # workers write into it until the cluster is closed.
        with (
            work_directory(options.work_dir, "omega-sim-") as root,
            DaskEngine(address=address, workers=workers) as cluster,
        ):
            engine_replay = EngineReplay(cluster, batch)
            options = dataclasses.replace(options, work_dir=root, engine=engine_replay)
            return simulation.run_with_progress(data, options, quiet=as_json)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fleet_day(
    tvs: int,
    days: int,
    engine: str,
    address: str | None,
    workers: int,
    batch: int,
    cells: int,
    seed: int,
    work_dir: Path | None,
    as_json: bool,
) -> None:
    """``--tvs N``: the synthetic fleet's days, batches of TVs per engine task."""
    from omega.bench.fleet_day import run_fleet_day
    from omega.cli._output import emit, err_console

    if tvs < 1 or days < 1 or batch < 1 or workers < 1:
        raise ConfigError("--tvs, --days, --batch and --engine-workers must be ≥ 1")
    if address is not None and engine != "dask":
        raise ConfigError("--address needs --engine dask")
    # SIGTERM unwinds like Ctrl-C, so the cluster and the server are stopped on the way out.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with err_console.status(f"{tvs} TVs, {days} simulated day(s) on the {engine} engine…"):
            result = run_fleet_day(
                tvs=tvs,
                days=days,
                engine=engine,
                address=address,
                workers=workers,
                batch=batch,
                cells=cells,
                seed=seed,
                cache_dir=simulation.cache_dir(),
                work_dir=work_dir,
            )
    finally:
        signal.signal(signal.SIGTERM, previous)
    emit(result, as_json=as_json, title="omega simulate (synthetic fleet)")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM as Ctrl-C: by the SIGINT handler in place — asyncio.run's while it runs,
    which cancels its main task so that every task unwinds. Raised here, the
    KeyboardInterrupt stopped whichever task ran then mid-step (with two fleets
    replaying at once, often not the main one), leaving the others' worker threads
    behind: the run hung on its way out."""
    handler = signal.getsignal(signal.SIGINT)
    if not callable(handler):  # SIGINT ignored (or not set from Python)
        raise KeyboardInterrupt
    handler(signal.SIGINT, frame)


def dataset_path(dataset: Path | None) -> Path:
    """``--dataset``, else $OMEGA_DATASET."""
    path = dataset or (
        Path(os.environ["OMEGA_DATASET"]) if os.environ.get("OMEGA_DATASET") else None
    )
    if path is None:
        raise ConfigError(
            "give --dataset DIR (or set OMEGA_DATASET); try ../shared/datasets/ml-latest-small"
        )
    return path


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
