"""``omega bench server``: a real ``omega serve`` under an open-loop fleet of devices.

``--db`` takes one storage or several, comma-separated (``sqlite,embedded-postgres``),
and ``--workers`` one server process count or several (``1,2``): each combination is
benched in turn with the same fleet and rates, and the report puts them side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from omega.cli._output import emit, emit_rows

__all__ = ["register"]

#: ``--db`` value for the default store: SQLite in the run's temporary data dir.
_SQLITE = "sqlite"

#: The columns of the table of steps: result key -> heading.
_STEP_COLUMNS = {
    "offered_per_s": "offered/s",
    "syncs_per_s": "syncs/s",
    "p50_ms": "p50 ms",
    "p95_ms": "p95 ms",
    "p99_ms": "p99 ms",
    "errors": "errors",
    "send_lag_p95_ms": "client lag p95",
    "server_cpu_pct": "server %cpu",
    "db_cpu_pct": "db %cpu",
    "client_cpu_pct": "client %cpu",
    "other_cpu_pct": "other %cpu",
    "steal_cpu_pct": "stolen %cpu",
    "wire_bytes_per_sync": "wire B/sync",
    "passed": "passed",
}

#: The columns of the side-by-side table (several ``--db``): result key -> heading.
_RUN_COLUMNS = {
    "storage": "storage",
    "workers": "workers",
    "syncs_per_s": "held syncs/s",
    "sync_p50_ms": "p50 ms",
    "sync_p95_ms": "p95 ms",
    "errors": "errors",
    "server_cpu_ms_per_sync": "server CPU ms/sync",
    "db_cpu_ms_per_sync": "db CPU ms/sync",
    "limited_by": "limited by",
}


def register(app: typer.Typer) -> None:
    app.command("server")(server)


def server(
    viewers: int = typer.Option(1000, min=1, help="Registered devices simulated."),
    db: str | None = typer.Option(
        None,
        help="Storage: a URL (postgresql://…, sqlite:///…), 'sqlite' (the default: a "
        "temporary data dir) or 'embedded-postgres' (a durable PostgreSQL started for the "
        "run, its CPU measured too); comma-separated to bench several side by side.",
    ),
    step_seconds: float = typer.Option(
        10.0,
        help="Seconds at each offered rate (the fleet first warms up at the first rate for "
        "up to 4 s, reported as 'warmup', not as a step).",
    ),
    p95_limit_ms: float = typer.Option(
        50.0, help="A step is held when its p95 latency is at most this (and no errors)."
    ),
    max_rate: float | None = typer.Option(None, help="Highest offered rate (syncs/s) to try."),
    rates: str | None = typer.Option(
        None, help="Comma-separated offered rates to step through (default 50…1200)."
    ),
    federation_interval: float | None = typer.Option(
        None, help="The server's in-process federation rounds, seconds (default: its 60)."
    ),
    workers: str = typer.Option(
        "1",
        help="Server processes (>1: uvicorn --workers); comma-separated (1,2) to bench "
        "each count in turn, side by side.",
    ),
    pull_only: float = typer.Option(
        0.0, min=0.0, max=1.0, help="Share of syncs with no push (0 = all push+pull)."
    ),
    connections: int = typer.Option(32, help="Client connections (keep-alive) in all."),
    seed: int = typer.Option(0, help="Seed for the devices' patterns and schedules."),
    transport: str = typer.Option(
        "http",
        help="The door the fleet comes through: http, grpc (StreamSync per device) or quic "
        "(HTTP/3, 16 streams a connection).",
    ),
    profile: Path | None = typer.Option(
        None,
        help="Sample the server with py-spy (the dev extra; needs ptrace) after the fleet "
        "registered, keep the raw stacks in this file, and report the CPU per sync by stage.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """A real `omega serve` under an open-loop fleet of devices in another process: the
    highest sync rate held with p95 ≤ 50 ms and no errors, and every step tried."""

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from omega.bench import run_server_bench
    from omega.bench.server import check_db
    from omega.cli._output import err_console
    from omega.errors import ConfigError

    if not step_seconds > 0:
        raise ConfigError(f"--step-seconds must be above 0, got {step_seconds}")
    offered = _offered_rates(rates)
    stores = _stores(db)
    for store in stores:
        check_db(store)
    counts = _worker_counts(workers)
    runs = [(store, count) for store in stores for count in counts]
    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    for store, count in runs:
        with Progress(*columns, console=err_console, transient=True) as bar:
            shown = f"{store or _SQLITE}, {count} worker(s)"
            task = bar.add_task(f"{shown}: starting the server, registering devices…", total=None)

            def progress(kind: str, event: Mapping[str, Any], task: Any = task) -> None:
                if kind == "ready":
                    bar.update(task, total=len(offered), completed=0, description="warming up…")
                elif kind == "measuring":
                    bar.update(task, description="stepping…")
                elif kind == "step":
                    bar.update(
                        task,
                        advance=1,
                        description=f"{event['offered_per_s']:g}/s: p95 "
                        f"{event['p95_ms']:g} ms, {event['errors']} errors",
                    )

            results.append(
                run_server_bench(
                    viewers=viewers,
                    db_url=store,
                    rates=offered,
                    max_rate=max_rate,
                    step_seconds=step_seconds,
                    p95_limit_ms=p95_limit_ms,
                    pull_only=pull_only,
                    connections=connections,
                    federation_interval=federation_interval,
                    workers=count,
                    seed=seed,
                    transport=transport,
                    profile=_profile_path(profile, f"{store or _SQLITE}-{count}", len(runs)),
                    progress=progress,
                )
            )
    if len(results) == 1:
        _emit_server(results[0], as_json=as_json)
    else:
        _emit_side_by_side(results, as_json=as_json)


def _profile_path(profile: Path | None, run: str, runs: int) -> Path | None:
    """Where one run keeps its samples: ``--profile``, suffixed by the run when several."""
    if profile is None or runs == 1:
        return profile
    return profile.with_name(f"{profile.stem}-{run}{profile.suffix}")


def _worker_counts(workers: str) -> list[int]:
    """``--workers`` as the server process counts to run (each at least 1)."""
    from omega.errors import ConfigError

    try:
        counts = [int(part) for part in workers.split(",")]
    except ValueError:
        raise ConfigError(
            f"--workers must be a count or comma-separated counts (1,2), got {workers!r}"
        ) from None
    if min(counts) < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers!r}")
    return counts


def _stores(db: str | None) -> list[str | None]:
    """``--db`` as the runs to make (None: the default SQLite)."""
    if db is None:
        return [None]
    stores = [part.strip() for part in db.split(",")]
    if not all(stores):
        from omega.errors import ConfigError

        raise ConfigError(f"--db has an empty entry: {db!r}")
    return [None if store == _SQLITE else store for store in stores]


def _offered_rates(rates: str | None) -> tuple[float, ...]:
    """``--rates`` as numbers (the default steps when not given)."""
    from omega.bench import DEFAULT_RATES
    from omega.errors import InputError

    try:
        return tuple(float(r) for r in rates.split(",")) if rates else DEFAULT_RATES
    except ValueError:
        raise InputError("--rates must be comma-separated numbers, e.g. 50,100,200") from None


def _step_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {label: step.get(key) for key, label in _STEP_COLUMNS.items()} for step in result["steps"]
    ]


def _emit_server(result: dict[str, Any], *, as_json: bool) -> None:
    """The figures, then a table of the steps (``--json``: one object, steps included)."""
    if as_json:
        emit(result, as_json=True)
        return
    emit(
        {k: v for k, v in result.items() if k != "steps"}, as_json=False, title="omega bench server"
    )
    emit_rows(
        _step_rows(result),
        as_json=False,
        title="steps (%cpu: percent of one core; --json has more)",
    )
    if "profile" in result:
        _emit_profile(result["profile"])


def _emit_profile(profile: Mapping[str, Any]) -> None:
    rows = [
        {
            "stage": s["stage"],
            "est. ms/sync": s.get("ms_per_sync"),
            "share": f"{100 * s['share']:.1f} %",
        }
        for s in profile["stages"]
    ]
    emit_rows(
        rows,
        as_json=False,
        title=f"server CPU per sync by stage ({profile['samples']} samples over "
        f"{profile['syncs']} syncs; raw stacks: {profile['raw_stacks']})",
    )


def _emit_side_by_side(results: list[dict[str, Any]], *, as_json: bool) -> None:
    """One row per run (storage × workers), then each one's steps (``--json``:
    ``{"runs": [...]}``)."""
    if as_json:
        emit({"runs": results}, as_json=True)
        return
    rows = [{label: r.get(key) for key, label in _RUN_COLUMNS.items()} for r in results]
    emit_rows(rows, as_json=False, title="omega bench server: held rate by storage and workers")
    for result in results:
        emit_rows(
            _step_rows(result),
            as_json=False,
            title=f"{result['storage']}, {result['workers']} worker(s): steps "
            "(%cpu: percent of one core)",
        )
