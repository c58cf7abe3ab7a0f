"""``omega worker``: run federation rounds against the constellation's storage."""

from __future__ import annotations

import functools
import json
import signal
import socket
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer

from omega.cli._cowatch_dp import (
    DELTA_VARIABLE,
    EPSILON_VARIABLE,
    SPREAD_VARIABLE,
    check_cowatch_dp,
    check_cowatch_spread,
    in_environment,
)
from omega.cli.helper import HelperSecretOption, HelperUrlOption, check_helper

if TYPE_CHECKING:
    from omega.errors import StoreError
    from omega.federation import RoundResult, Worker

__all__ = ["NO_CODEBOOK", "register"]

#: What a round on a server without a codebook says (it has nothing to consolidate).
NO_CODEBOOK = (
    "the constellation has no codebook yet, so the round had nothing to consolidate: "
    "publish one with `omega admin codebook publish --catalog FILE` (the catalog your TVs "
    "import), then run the worker again"
)


def worker(
    db: Annotated[
        str, typer.Option(help="Storage URL: sqlite:///path/to/file.db or postgresql://…")
    ] = "sqlite:///omega-data/constellation.db",
    interval: Annotated[float, typer.Option(help="Seconds between rounds.")] = 60.0,
    once: Annotated[bool, typer.Option("--once", help="Run one round and exit.")] = False,
    worker_id: Annotated[
        str | None, typer.Option(help="Name in logs and leases; default host-pid.")
    ] = None,
    helper_url: HelperUrlOption = None,
    helper_secret_file: HelperSecretOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each round as one JSON object (a line each).")
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            help="Where consolidation runs: local (this process) or dask (partitions by "
            "content group on a Dask cluster; the dask extra)."
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(help="An existing Dask scheduler (tcp://host:8786); default: start one."),
    ] = None,
    engine_workers: Annotated[
        int, typer.Option(help="Worker processes of the Dask cluster started without --address.")
    ] = 2,
) -> None:
    """Apply pushed contributions, consolidate, and publish releases (Ctrl-C / SIGTERM stop
    it between rounds; a round killed half-way publishes nothing).

    \f
    Long only by its options: each is one annotated parameter, as Typer reads them.
    """
    import os

    from omega.constellation import Settings
    from omega.constellation.helper_client import (
        connect_cowatch,
        connect_helper,
        helper_settings,
    )
    from omega.errors import ConfigError, InputError
    from omega.federation import FederationConfig, Worker, open_engine
    from omega.storage import open_storage

    if interval <= 0:
        raise ConfigError(f"--interval must be > 0 seconds, got {interval}")
    name = worker_id or f"{socket.gethostname()}-{os.getpid()}"
    # The same OMEGA_SHARE_* / OMEGA_COWATCH_* settings `omega serve` reads, so both
    # count alike; the flags name the helper.
    settings = Settings()
    helper = helper_settings(settings, url=helper_url, secret_file=helper_secret_file)
    # The co-watch DP settings serve refuses, refused alike (named by their variables:
    # the worker has no flags for them) before a round runs.
    check_cowatch_dp(
        settings,
        helper_url=helper.url,
        epsilon_flag=EPSILON_VARIABLE,
        delta_flag=DELTA_VARIABLE,
        delta_given=in_environment(DELTA_VARIABLE),
    )
    check_cowatch_spread(settings, helper_url=helper.url, spread_flag=SPREAD_VARIABLE)
    shares = connect_helper(helper)
    check_helper(
        helper.url,
        min_batch=settings.share_min_batch,
        noise_epsilon=settings.share_noise_epsilon,
        cowatch=(settings.cowatch_per_epoch, settings.cowatch_epoch_s)
        if settings.cowatch_threshold
        else None,
    )
    storage = open_storage(db)
    cluster = None
    try:
        cluster = open_engine(engine, address=address, workers=engine_workers)
        runner = Worker(
            storage,
            FederationConfig(),
            worker_id=name,
            interval_s=interval,
            on_round=functools.partial(_print_round, once=once, as_json=as_json),
            on_error=_print_failure,
            shares=shares,
            cowatch=connect_cowatch(helper, shares),
            engine=cluster,
        )
        if once:
            if runner.run_once().status == "no_codebook":
                raise InputError(NO_CODEBOOK)
        else:
            _run_until_stopped(runner)
    finally:
        if cluster is not None:
            cluster.close()
        storage.close()
        if shares is not None:
            shares.close()


def _print_round(result: RoundResult, *, once: bool, as_json: bool) -> None:
    """One round's result: a table (or JSON) with --once, else a line (or a JSON line)."""
    from omega.cli._output import emit, err_console

    row = _row(result)
    if once:
        emit(row, as_json=as_json, title="omega worker")
    elif as_json:
        print(json.dumps(row), flush=True)
    else:
        if row["status"] == "no_codebook":
            err_console.print(f"[yellow]warning:[/] {NO_CODEBOOK}")
        err_console.print(
            f"round: {row['status']} version={row['version']} applied={row['applied']}"
            f" live={row['live']} released={row['released']} +{row['upserted']}"
            f" -{row['removed']} trends={row['trends']} cowatch={row['cowatch_rows']}"
            f" in {row['seconds']:.3f}s"
        )
        if "cowatch_error" in row:
            err_console.print(f"[yellow]warning:[/] co-watch step: {row['cowatch_error']}")


def _print_failure(exc: StoreError) -> None:
    from omega.cli._output import err_console

    err_console.print(f"[bold red]round failed:[/] {exc} (retrying next round)")


def _run_until_stopped(runner: Worker) -> None:
    """Run rounds until SIGTERM or SIGINT (Ctrl-C), which stop the loop between rounds."""
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda _signum, _frame: stop.set())
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        runner.run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _row(result: RoundResult) -> dict[str, Any]:
    row = result.as_dict()
    stats = row.pop("stats") or {}
    row.pop("timings")
    if row["cowatch_error"] is None:  # the co-watch step did not fail (or did not run)
        row.pop("cowatch_error")
    row["seconds"] = round(row["seconds"], 4)
    row.update({f"filter_{k}": v for k, v in stats.items() if k in ("invalid", "low_quality")})
    if stats:
        row["clusters"] = stats["clusters"]
        row["disputed"] = stats["disputed"]
        row["too_few_viewers"] = stats["too_few_viewers"]
    return row


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
