"""``omega bench``: each command performs the real operation and reports what it measured."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

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
    pushes: int = typer.Option(1000, min=1, help="Push deltas to build (and as many pulls)."),
    seed: int = typer.Option(0, help="Seed for the synthetic deltas."),
    repeats: int = typer.Option(3, min=1, help="Encode/decode passes over every message."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Wire size and codec speed of realistic push and pull deltas (msgpack + zstd)."""
    from omega.bench import run_sync_bench

    result = run_sync_bench(pushes=pushes, seed=seed, repeats=repeats)
    emit(result, as_json=as_json, title="omega bench sync")


@app.command("brain")
def brain(
    catalog: int = typer.Option(10_000, min=100, help="Synthetic catalog size (100000 works too)."),
    events: int = typer.Option(500, min=0, help="History replayed before measuring."),
    patterns: int = typer.Option(
        10_000, min=0, help="Patterns in the bank when the footprint is taken."
    ),
    calls: int = typer.Option(
        1_000, min=1, help="recommend() calls timed (k=10, full scoring path)."
    ),
    vectors: str = typer.Option(
        "auto", help="model (real MiniLM), clustered (synthetic), auto (model ≤ 20K titles)."
    ),
    seed: int = typer.Option(0, help="Random seed."),
    cowatch: int = typer.Option(
        20, min=0, help="Co-watch neighbours per title in the table loaded first (0: none)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """A TV brain at scale: recommend/search latency, recall, observe rate, embed time,
    footprint, RSS, cold and warm start, with a co-watch table loaded."""
    from omega.bench import run_brain_bench
    from omega.cli._output import err_console
    from omega.errors import ConfigError

    if vectors not in ("auto", "model", "clustered"):
        raise ConfigError("--vectors must be auto, model or clustered")
    with err_console.status("benchmarking the brain…") as status:
        result = run_brain_bench(
            catalog=catalog,
            events=events,
            patterns=patterns,
            calls=calls,
            vectors=vectors,
            seed=seed,
            cowatch=cowatch,
            progress=lambda text: status.update(text),
        )
    emit(result, as_json=as_json, title="omega bench brain")


@app.command("mcp")
def mcp(
    catalog: int = typer.Option(10_000, help="Synthetic catalog size (clustered vectors)."),
    events: int = typer.Option(500, help="History replayed before measuring."),
    calls: int = typer.Option(1_000, help="viewer_get_recommendations calls timed (k=10)."),
    seed: int = typer.Option(0, help="Random seed."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The viewer tools over stdio: viewer_get_recommendations latency (p50/p99) from a
    real `omega mcp viewer` process, beside the brain's own recommend time in each call."""
    from omega.bench import run_mcp_bench
    from omega.cli._output import err_console
    from omega.errors import InputError

    if catalog < 100 or events < 0 or calls < 1:
        raise InputError("--catalog ≥ 100, --events ≥ 0 and --calls ≥ 1 are required")
    with err_console.status("benchmarking the MCP viewer tools…") as status:
        result = run_mcp_bench(
            catalog=catalog,
            events=events,
            calls=calls,
            seed=seed,
            progress=lambda text: status.update(text),
        )
    emit(result, as_json=as_json, title="omega bench mcp")


@app.command("federation")
def federation(
    patterns: int = typer.Option(100_000, help="Live patterns in the store when the round runs."),
    viewers: int = typer.Option(0, help="Synthetic viewers pushing them (0: patterns / 25)."),
    seed: int = typer.Option(0, help="Seed for the synthetic fleet."),
    engine: str = typer.Option(
        "local", help="local, or dask: also a round on Dask clusters of --engine-workers sizes."
    ),
    engine_workers: str = typer.Option("1,2", help="Dask cluster sizes, comma-separated."),
    address: str | None = typer.Option(None, help="An existing Dask scheduler instead."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """One full federation round (read live set, consolidate, trends, diff, atomic commit)
    over a real SQLite store filled by synthetic viewers; the fill is not timed. With
    --engine dask, the same round on copies of the store on each Dask cluster."""
    from omega.bench import run_federation_bench
    from omega.cli._output import err_console
    from omega.errors import InputError

    viewers = viewers or max(1, patterns // 25)
    if patterns < 1 or viewers < 1 or viewers > patterns:
        raise InputError("--patterns ≥ 1 and 1 ≤ --viewers ≤ --patterns are required")
    if engine not in ("local", "dask"):
        raise InputError(f"--engine must be local or dask, got {engine!r}")
    if address is not None and engine != "dask":
        raise InputError("--address needs --engine dask")
    try:
        sizes = [int(w) for w in engine_workers.split(",")] if engine == "dask" else []
    except ValueError as exc:
        raise InputError(
            f"--engine-workers must be numbers like 1,2, got {engine_workers!r}"
        ) from exc
    with err_console.status("filling the store and running the rounds…"):
        result = run_federation_bench(
            patterns=patterns,
            viewers=viewers,
            seed=seed,
            engines=sizes,
            address=address if engine == "dask" else None,
        )
    emit(result, as_json=as_json, title="omega bench federation")


@app.command("sybil")
def sybil(
    attempts: int = typer.Option(2000, help="Registrations tried each way (≤ 20000)."),
    seed: int = typer.Option(0, help="Seed for the drill's codebook."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Sybil identities against attested registration: how many an attacker registers
    without a manufacturer's key, with one TV's key, with a leaked manufacturer key, and
    after the operator revokes it (an in-process constellation, the real HTTP API)."""
    import asyncio
    import tempfile
    from pathlib import Path

    from omega.cli._output import err_console
    from omega.errors import InputError
    from omega.sim.sybil import sybil_drill

    if not 1 <= attempts <= 20_000:
        raise InputError("--attempts must be in 1..20000")
    with (
        tempfile.TemporaryDirectory(prefix="omega-sybil-") as tmp,
        err_console.status("registering Sybils every way…"),
    ):
        result = asyncio.run(sybil_drill(Path(tmp), attempts=attempts, seed=seed))
    emit(result, as_json=as_json, title="omega bench sybil")


@app.command("sdk")
def sdk(
    titles: int = typer.Option(10_000, min=100, help="Synthetic catalog size (clustered vectors)."),
    events: int = typer.Option(300, min=1, help="Views tracked before measuring."),
    calls: int = typer.Option(2_000, min=10, help="recommend() calls timed on each path."),
    warmup: int = typer.Option(200, min=0, help="Untimed calls before them."),
    k: int = typer.Option(10, "-k", min=1, max=100, help="Titles per recommendation."),
    rounds: int = typer.Option(2, min=1, help="Runs of each path, alternating."),
    seed: int = typer.Option(0, help="Random seed."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The C SDK against Python on one brain: recommend p50/p99 from a C program using
    libomega.so and from the Python API, the C process's first calls (interpreter start,
    open, model load) and its resident memory. Builds the library first."""
    from omega.bench import run_sdk_bench
    from omega.cli._output import err_console

    with err_console.status("benchmarking the C SDK…") as status:
        result = run_sdk_bench(
            titles=titles,
            events=events,
            calls=calls,
            warmup=warmup,
            k=k,
            rounds=rounds,
            seed=seed,
            progress=lambda text: status.update(text),
        )
    emit(result, as_json=as_json, title="omega bench sdk")


@app.command("wasm")
def wasm(
    messages: int = typer.Option(200, min=1, help="Pushes, pulls and sealed answers timed."),
    repeats: int = typer.Option(5, min=1, help="Passes over them on each side (median reported)."),
    loads: int = typer.Option(3, min=1, help="Cold starts of Pyodide under Node.js timed."),
    cache: Path | None = typer.Option(
        None, help="Where fetched parts are kept. [default: ~/.cache/omega/wasm]"
    ),
    seed: int = typer.Option(0, help="Seed for the synthetic messages."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The browser part in Pyodide (Node.js) against CPython: cold load time, µs to encode
    a push, decode a pull and check a seal on each side, and the bundle's bytes. Builds
    the bundle first (omega sdk wasm; npm and pip fetch its parts on first use)."""
    from omega.bench import run_wasm_bench
    from omega.cli._output import err_console
    from omega.cli.sdk import default_cache

    with err_console.status("benchmarking the browser part…") as status:
        result = run_wasm_bench(
            cache=cache or default_cache(),
            messages=messages,
            repeats=repeats,
            loads=loads,
            seed=seed,
            progress=lambda text: status.update(text),
        )
    emit(result, as_json=as_json, title="omega bench wasm")


@app.command("shares")
def shares(
    reports: int = typer.Option(2000, help="Two-server reports to make and count (≤ 5000)."),
    catalog: int = typer.Option(9742, help="Catalog size (ml-latest-small has 9,742)."),
    seed: int = typer.Option(0, help="Seed for the titles reported."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Two-server popularity reports: what a TV spends making one, its size, and how fast
    the constellation counts a batch with a real helper over loopback HTTP."""
    from omega.bench import run_shares_bench
    from omega.cli._output import err_console

    with err_console.status("making reports and counting them with a helper…"):
        result = run_shares_bench(reports=reports, catalog=catalog, seed=seed)
    emit(result, as_json=as_json, title="omega bench shares")


@app.command("cowatch")
def cowatch(
    dataset: Path | None = typer.Option(
        None, help="A MovieLens directory (ratings.csv): the tables its fleets would release."
    ),
    k: int = typer.Option(3, min=2, help="Distinct TVs before a pair is released."),
    top: int = typer.Option(20, min=1, max=200, help="Neighbours released per title."),
    window: int = typer.Option(5, min=1, help="Steps after a title that count as co-watched."),
    seed: int = typer.Option(0, help="Seed for the fleet subsets and the full table."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Private co-watch: STAR's costs per report, Poplar's estimated, and what a new TV
    downloads (bytes, answers of ≤ 5 KB, syncs) as the fleet grows (docs/cowatch.md)."""
    from omega.bench.cowatch import run_cowatch_bench
    from omega.cli._output import err_console

    with err_console.status("timing the protocol, then pulling each fleet's table…"):
        result = run_cowatch_bench(dataset=dataset, k=k, top=top, window=window, seed=seed)
    emit(result, as_json=as_json, title="omega bench cowatch")


@app.command("quic-resume")
def quic_resume(
    repeats: int = typer.Option(30, help="Fresh/resumed pairs measured, for each request."),
    rtt_ms: float = typer.Option(
        0.0, help="Round trip added by a UDP delay line in front of the server (0: loopback)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """HTTP/3: a TV's first pull and first sync on a fresh connection (full handshake)
    against a resumed one (session ticket; the pull as 0-RTT early data), on a real server."""
    from omega.bench.quic_resume import run_quic_resume_bench
    from omega.cli._output import err_console

    with err_console.status("starting the server, then fresh and resumed connections…"):
        result = run_quic_resume_bench(repeats=repeats, rtt_ms=rtt_ms)
    emit(result, as_json=as_json, title="omega bench quic-resume")


@app.command("fleet-restart")
def fleet_restart(
    devices: int = typer.Option(1000, help="TVs: real brains, each kept syncing by a runtime."),
    interval: float = typer.Option(60.0, help="Each device's sync interval, seconds (± 10 %)."),
    outage: float = typer.Option(30.0, help="Seconds from the SIGKILL to the restart."),
    window: float = typer.Option(60.0, help="Seconds after the restart compared with steady."),
    after: float | None = typer.Option(
        None, help="Seconds observed after the restart (default: window + 2 intervals)."
    ),
    backoff_cap: float = typer.Option(900.0, help="The devices' longest backoff, seconds."),
    seed: int = typer.Option(0, help="Seed for the households' viewing and the jitter."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """A fleet of device runtimes in this process syncing with a real `omega serve`, which
    is SIGKILLed and restarted on the same port: the reconnect against the steady rate,
    the recovery, and the server's storage audited (patterns lost or stored twice)."""

    from omega.bench import run_fleet_restart
    from omega.cli._output import err_console

    with err_console.status("opening the fleet…") as status:

        def progress(kind: str, event: Mapping[str, Any]) -> None:
            texts = {
                "fleet": "the fleet is syncing (steady)…",
                "killed": "server SIGKILLed: the fleet rides it out…",
                "restarted": "server restarted: the fleet reconnects…",
            }
            status.update(texts.get(kind, kind))

        result = run_fleet_restart(
            devices=devices,
            interval=interval,
            outage=outage,
            window=window,
            after=after,
            cap=backoff_cap,
            seed=seed,
            progress=progress,
        )
    emit(result, as_json=as_json, title="omega bench fleet-restart")


@app.command("failover")
def failover(
    devices: int = typer.Option(200, help="TVs: real brains, each kept syncing by a runtime."),
    interval: float = typer.Option(10.0, help="Each device's sync interval, seconds (± 10 %)."),
    steady: float | None = typer.Option(
        None, help="Seconds before the kill (default 2 intervals)."
    ),
    after: float | None = typer.Option(None, help="Seconds after the kill (default 2 intervals)."),
    seed: int = typer.Option(0, help="Seed for the households' viewing and the jitter."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Two `omega serve` replicas on one (embedded) PostgreSQL, a fleet of device runtimes
    that know both; one replica is SIGKILLed: the window in which syncs failed, each
    failed device's recovery, and the shared store audited (patterns lost or stored twice)."""

    from omega.bench import run_failover
    from omega.cli._output import err_console

    with err_console.status("opening the fleet…") as status:

        def progress(kind: str, event: Mapping[str, Any]) -> None:
            texts = {
                "fleet": "the fleet is syncing with two replicas…",
                "killed": "replica a SIGKILLed: the fleet moves to b…",
            }
            status.update(texts.get(kind, kind))

        result = run_failover(
            devices=devices,
            interval=interval,
            steady=steady,
            after=after,
            seed=seed,
            progress=progress,
        )
    emit(result, as_json=as_json, title="omega bench failover")


@app.command("soak")
def soak(
    minutes: float = typer.Option(10.0, help="How long the fleet runs (faults included)."),
    held_rate: float | None = typer.Option(
        None, help="The held rate, syncs/s (default: measured first by a step-up probe)."
    ),
    load: float = typer.Option(0.7, help="Share of the held rate offered."),
    devices: int = typer.Option(1000, help="Cheap durable devices (in their own process)."),
    brains: int = typer.Option(16, help="Real brains on device runtimes (in this process)."),
    db: str | None = typer.Option(
        None, help="PostgreSQL URL for the server's storage (default: SQLite)."
    ),
    restarts: int | None = typer.Option(
        None, help="Server SIGKILLs and restarts (default: one per 200 s, at least 1)."
    ),
    reset_bursts: int | None = typer.Option(
        None, help="Bursts of connection resets (default: one a minute, at least 1)."
    ),
    helper_down: float | None = typer.Option(
        None, help="Seconds the helper stays down (default: 1.5 rounds, at least 10)."
    ),
    federation_interval: float = typer.Option(
        60.0, help="Seconds between the server's rounds (they count the reports)."
    ),
    seed: int = typer.Option(0, help="Seed for the fault schedule, devices and households."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """A fleet at ~70 % of the held rate for --minutes through server SIGKILLs, connection
    resets and a helper outage; then the server's storage audited against what every
    device was acknowledged. Exit 1 if anything was lost or stored twice."""
    from omega.bench import run_soak

    result = run_soak(
        minutes=minutes,
        held_rate=held_rate,
        load=load,
        devices=devices,
        brains=brains,
        db_url=db,
        restarts=restarts,
        reset_bursts=reset_bursts,
        helper_down=helper_down,
        federation_interval=federation_interval,
        seed=seed,
        progress=_soak_progress(),
    )
    _emit_soak(result, as_json=as_json)
    if not result["ok"]:
        raise typer.Exit(1)


def _soak_progress() -> Callable[[str, Mapping[str, Any]], None]:
    """One line on stderr per stage, probe step and fault, and a line every load tick."""
    from omega.cli._output import err_console

    def say(kind: str, event: Mapping[str, Any]) -> None:
        if kind == "setup" and event.get("text"):
            err_console.print(event["text"])
        elif kind == "step":
            err_console.print(
                f"  probe {event['offered_per_s']:g}/s: p95 {event['p95_ms']:g} ms, "
                f"{event['errors']} errors{'' if event['passed'] else ' (not held)'}"
            )
        elif kind == "start":
            err_console.print(
                f"held rate {event['held']:g}/s ({event['source']}): offering {event['rate']:g}/s"
            )
        elif kind == "schedule":
            err_console.print("faults: " + "; ".join(event["faults"]))
        elif kind == "fault":
            details = ", ".join(f"{k} {v}" for k, v in event.items() if k not in ("kind", "at_s"))
            err_console.print(f"[bold]{event['at_s']:7.1f} s  {event['kind']}[/]: {details}")
        elif kind == "load-tick":
            err_console.print(
                f"  … {event['ok']} ok, {event['errors']} errors, {event['unacked']} batches "
                "unacknowledged",
                style="dim",
            )
        elif kind == "draining":
            err_console.print("draining: every device resends what is unacknowledged…")

    return say


def _emit_soak(result: dict[str, Any], *, as_json: bool) -> None:
    """The figures, then a table of the faults as they happened (``--json``: one object)."""
    from omega.cli._output import emit_rows

    if as_json:
        emit(result, as_json=True)
        return
    shown = {k: v for k, v in result.items() if k not in ("faults", "settings", "held_rate")}
    shown["faults"] = {k: v for k, v in result["faults"].items() if k != "events"}
    emit(shown, as_json=False, title="omega bench soak")
    rows = [
        {
            "at s": e["at_s"],
            "fault": e["kind"],
            "down s": e.get("down_s"),
            "resets": e.get("resets"),
            "syncs failed": e.get("syncs_failed_in_window"),
            "reports queued": e.get("shares_queued_at_return"),
        }
        for e in result["faults"]["events"]
    ]
    emit_rows(rows, as_json=False, title="faults")


from omega.cli import bench_server  # noqa: E402  (it adds `omega bench server` to app)

bench_server.register(app)

from omega.cli import bench_connections  # noqa: E402  (`omega bench connections`)

bench_connections.register(app)

from omega.cli import bench_sync_path  # noqa: E402  (`omega bench sync-path`)

bench_sync_path.register(app)
