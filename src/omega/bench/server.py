"""``omega bench server``: a real ``omega serve`` under an open-loop fleet of devices.

:func:`run_server_bench` starts the constellation in a child process on a free
127.0.0.1 port (SQLite in a temporary data directory unless ``db_url`` is given),
publishes a codebook, then runs :mod:`omega.bench.loadgen` in a second child
process, which registers the fleet and steps the offered sync rate up. The result is the
highest step sustained with p95 ≤ ``p95_limit_ms`` and no errors, plus every step.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np

from omega.bench._cpu import process_tree
from omega.bench.certs import SelfSigned, self_signed
from omega.bench.loadgen import MANUFACTURER, LoadConfig, catalog_item
from omega.bench.pgserver import embedded_postgres
from omega.bench.profile import Profiler, stage_report
from omega.bench.serving import BenchError, ServerProcess, free_port, uvicorn_command
from omega.constellation import Settings, load_admin_token, load_keys
from omega.constellation.doors.http3 import PORT_FILE
from omega.errors import ConfigError, InputError
from omega.protocol import EMBEDDING_DIM
from omega.protocol.attestation import Manufacturer

__all__ = [
    "DEFAULT_RATES",
    "EMBEDDED_POSTGRES",
    "BenchError",
    "check_db",
    "run_server_bench",
    "server_command",
    "trust_manufacturer",
]

#: ``--db`` value that starts a PostgreSQL for the run (``omega.bench.pgserver``: durable,
#: as production runs), so that its processes' CPU is measured too.
EMBEDDED_POSTGRES = "embedded-postgres"

#: Offered rates (syncs per second) stepped through by default.
DEFAULT_RATES = (50, 100, 200, 300, 400, 500, 600, 800, 1000, 1200)

_CODEBOOK_ID = "bench-k256"
#: Seconds the fleet syncs at the first rate before the first measured step (at most one
#: step's length): a fresh server's first seconds under load — its connection pools
#: filling, the database's first pages and plans — once decided whole runs (a first step
#: at 400/s failed at p95 155 ms on gRPC, and the run right after held 600/s).
WARMUP_SECONDS = 4.0
_CELLS = 256  # the cells omega.bench.sync draws from
#: Catalog titles published with the codebook: the domain of the devices' popularity
#: reports (about ml-latest-small's 9,742 movies).
CATALOG = 9_000

Progress = Callable[[str, Mapping[str, Any]], None]


def _default(setting: str) -> Any:
    """The server's built-in default for ``setting`` (not the environment's override)."""
    return Settings.model_fields[setting].default


def server_command(
    *,
    port: int,
    data_dir: Path,
    db_url: str | None,
    federation_interval: float | None,
    workers: int,
    rate_limit: int,
    door_args: tuple[str, ...] = (),
) -> tuple[list[str], dict[str, str]]:
    """The command and environment of a bench's constellation on 127.0.0.1:``port``:
    ``omega serve`` (one worker) or uvicorn's factory mode (several). ``door_args``:
    ``omega serve`` options that open another door (one worker only)."""
    env = {
        **os.environ,
        "OMEGA_RATE_LIMIT": str(rate_limit),
        # The whole fleet registers from this one address, attested by one manufacturer
        # (the bench's), within seconds: limits a real fleet never meets in one minute.
        "OMEGA_REGISTRATION_RATE_LIMIT": "0",
        "OMEGA_MANUFACTURER_REGISTRATION_LIMIT": "0",
    }
    if workers == 1:
        command = [sys.executable, "-c", "from omega.cli.main import run; run()", "serve"]
        command += ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
        command += ["--log-level", "warning", "--json"]
        if db_url is not None:
            command += ["--db", db_url]
        if federation_interval is not None:
            command += ["--federation-interval", str(federation_interval)]
        return [*command, *door_args], env
    # `omega serve` runs one process; several need uvicorn's factory mode and OMEGA_* env.
    env["OMEGA_DATA_DIR"] = str(data_dir)
    if db_url is not None:
        env["OMEGA_DB_URL"] = db_url
    if federation_interval is not None:
        env["OMEGA_FEDERATION_INTERVAL"] = str(federation_interval)
    return uvicorn_command(port=port, workers=workers), env


@contextlib.contextmanager
def _server(
    data_dir: Path,
    *,
    db_url: str | None,
    federation_interval: float | None,
    workers: int,
    rate_limit: int,
    door_args: tuple[str, ...] = (),
) -> Iterator[tuple[str, list[int]]]:
    """A constellation child process; yields its base URL and process ids once up."""
    # Made here, once: several uvicorn workers starting together would each make their own.
    settings = Settings(data_dir=data_dir)
    load_keys(settings)
    load_admin_token(settings)
    port = free_port()
    command, env = server_command(
        port=port,
        data_dir=data_dir,
        db_url=db_url,
        federation_interval=federation_interval,
        workers=workers,
        rate_limit=rate_limit,
        door_args=door_args,
    )
    server = ServerProcess(
        command, env=env, base_url=f"http://127.0.0.1:{port}", log_path=data_dir / "server.log"
    )
    try:
        server.start()
        pids = process_tree(server.process.pid)
        deadline = time.monotonic() + 10
        while workers > 1 and len(pids) <= workers and time.monotonic() < deadline:
            time.sleep(0.2)  # uvicorn's supervisor is up; its workers may still be starting
            pids = process_tree(server.process.pid)
        yield server.base_url, pids
    finally:
        server.stop()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _publish_codebook(base_url: str, admin_token: str, *, seed: int) -> None:
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(_CELLS, EMBEDDING_DIM))
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    doc = {
        "codebook_id": _CODEBOOK_ID,
        "dim": EMBEDDING_DIM,
        "k": _CELLS,
        "centroids_f16": centroids.astype("<f2").tobytes(),
        "item_ids": [catalog_item(i) for i in range(CATALOG)],
    }
    post_codebook(base_url, admin_token, doc)


def trust_manufacturer(base_url: str, admin_token: str, maker: Manufacturer) -> None:
    """Register the bench's manufacturer key: it attests every device of the fleet."""
    doc = {
        "manufacturer_id": maker.manufacturer_id,
        "key_id": maker.key_id,
        "public_key": maker.public_key.hex(),
    }
    answer = httpx.post(
        base_url + "/api/omega/manufacturers",
        json=doc,
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=30,
    )
    if answer.status_code != 201:
        raise BenchError(f"registering the manufacturer failed: {answer.status_code} {answer.text}")


def _run_loadgen(
    config: LoadConfig, log_path: Path, progress: Progress | None, profiler: Profiler | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the device fleet in its own process; collect what it reports, line by line.
    ``profiler`` samples the server from the fleet's registration to the end."""
    command = [
        sys.executable,
        "-m",
        "omega.bench.loadgen",
        msgspec.json.encode(config).decode(),
    ]
    ready: dict[str, Any] = {}
    steps: list[dict[str, Any]] = []
    with (
        contextlib.ExitStack() as stack,
        log_path.open("wb") as log,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            event = json.loads(line)
            kind = event.pop("event")
            if kind == "ready":
                ready = event
            elif kind == "warmup":
                ready["warmup"] = event
            elif kind == "measuring":
                if profiler is not None:
                    profiler.start()
                    stack.callback(profiler.stop)
            elif kind == "step":
                steps.append(event)
            if progress is not None:
                progress(kind, event)
        code = process.wait()
    if code != 0:
        raise BenchError(f"the load generator failed (exit {code}):\n{_tail(log_path)}")
    return ready, steps


def run_server_bench(
    *,
    viewers: int = 1000,
    db_url: str | None = None,
    rates: tuple[float, ...] = DEFAULT_RATES,
    max_rate: float | None = None,
    step_seconds: float = 10.0,
    p95_limit_ms: float = 50.0,
    pull_only: float = 0.0,
    connections: int = 32,
    federation_interval: float | None = None,
    workers: int = 1,
    seed: int = 0,
    transport: str = "http",
    profile: Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Start a server, step a fleet of ``viewers`` devices through ``rates``; report.

    ``federation_interval`` None keeps the server's default (in-process rounds every
    60 s); 0 disables rounds. ``workers`` > 1 runs uvicorn's multi-process mode.
    ``transport``: the door the fleet comes through (``http``; ``grpc``: the server's
    gRPC door on a port of its own; ``quic``: its HTTP/3 door on a UDP port, with a
    self-signed certificate made for the run, which the fleet pins). ``profile``: sample
    the server with py-spy from registration's end to the last step, keep the raw stacks
    there, and report the CPU per sync by stage (``omega.bench.profile``).
    """
    if viewers < 1 or step_seconds <= 0 or not 0 <= pull_only <= 1 or workers < 1:
        raise InputError("viewers ≥ 1, step seconds > 0, 0 ≤ pull-only ≤ 1, workers ≥ 1")
    door_args, door_url = _door(transport, workers)
    check_db(db_url)
    if profile is not None and workers != 1:
        raise InputError("--profile samples one server process: use --workers 1")
    stepped = _offered_rates(rates, max_rate)
    rate_limit = _rate_limit(stepped, viewers)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="omega-bench-server-"))
        db_pid = None
        if db_url == EMBEDDED_POSTGRES:
            pg = stack.enter_context(embedded_postgres(durable=True))
            db_url, db_pid = str(pg), pg.pid
        data_dir = Path(tmp)
        quic = self_signed(data_dir / "tls") if transport == "quic" else None
        if quic is not None:
            door_args = quic_door_args(quic)
        with _server(
            data_dir,
            db_url=db_url,
            federation_interval=federation_interval,
            workers=workers,
            rate_limit=rate_limit,
            door_args=door_args,
        ) as (base_url, server_pids):
            admin_token = (data_dir / "admin-token").read_text().strip()
            _publish_codebook(base_url, admin_token, seed=seed)
            maker = Manufacturer.generate(MANUFACTURER, "k1")
            trust_manufacturer(base_url, admin_token, maker)
            config = LoadConfig(
                base_url=base_url,
                transport=transport,
                door_url=door_url,
                codebook_id=_CODEBOOK_ID,
                viewers=viewers,
                rates=[float(r) for r in stepped],
                step_seconds=step_seconds,
                warmup_seconds=min(step_seconds, WARMUP_SECONDS),
                p95_limit_ms=p95_limit_ms,
                pull_only=pull_only,
                connections=connections,
                seed=seed,
                server_pids=server_pids,
                catalog=CATALOG,
                manufacturer_key=maker.key.private_bytes_raw(),
                db_pid=db_pid,
            )
            if quic is not None:
                config = _through_quic(config, data_dir, quic)
            profiler = Profiler(server_pids[0], profile) if profile is not None else None
            ready, steps = _run_loadgen(config, data_dir / "loadgen.log", progress, profiler)
    report = _report(
        steps,
        viewers=viewers,
        setup_s=float(ready.get("setup_s", 0.0)),
        storage=_storage_name(db_url, embedded=db_pid is not None),
        settings=_settings(
            config, federation_interval=federation_interval, workers=workers, rate_limit=rate_limit
        ),
    )
    # The warm-up's own figures (not a step: it decides nothing), to show what it was.
    report["warmup"] = ready.get("warmup")
    if profile is not None:
        report["profile"] = _profiled(profile, steps, step_seconds)
    return report


def _profiled(raw: Path, steps: list[dict[str, Any]], step_seconds: float) -> dict[str, Any]:
    """The stage report of the samples in ``raw``, over every step's syncs."""
    syncs = sum(int(step["syncs"]) for step in steps)
    cpu = [step.get("server_cpu_pct") for step in steps]
    per_sync = None
    if syncs and None not in cpu:
        per_sync = sum(float(c) for c in cpu if c is not None) * 10 * step_seconds / syncs
    figures = stage_report(raw, syncs=syncs, server_cpu_ms_per_sync=per_sync)
    shown = round(per_sync, 3) if per_sync is not None else None
    return {"raw_stacks": str(raw), "server_cpu_ms_per_sync": shown, **figures}


def check_db(db_url: str | None) -> None:
    """``--db``: a storage URL, or :data:`EMBEDDED_POSTGRES`."""
    if db_url is None or db_url == EMBEDDED_POSTGRES:
        return
    if not db_url.startswith(("sqlite:", "postgresql:", "postgres:")):
        raise ConfigError(
            f"--db must be a sqlite:// or postgresql:// URL, or {EMBEDDED_POSTGRES}, got {db_url!r}"
        )


def _storage_name(db_url: str | None, *, embedded: bool) -> str:
    if embedded:
        return "postgresql (embedded, durable)"
    return "postgresql" if db_url and db_url.startswith("postgres") else "sqlite"


def _door(transport: str, workers: int) -> tuple[tuple[str, ...], str]:
    """The ``omega serve`` options that open ``transport``'s door, and its address."""
    if transport == "http":
        return (), ""
    if transport not in ("grpc", "quic"):
        raise InputError(f"--transport must be http, grpc or quic, got {transport!r}")
    if workers != 1:
        raise InputError(f"--transport {transport} runs one server process (--workers 1)")
    if transport == "quic":
        return (), ""  # its certificate is made in the run's directory (quic_door_args)
    port = free_port()
    return ("--grpc-port", str(port)), f"127.0.0.1:{port}"


def _through_quic(config: LoadConfig, data_dir: Path, quic: SelfSigned) -> LoadConfig:
    """``config`` with the fleet on the server's HTTP/3 door (the UDP port it bound)."""
    port = int((data_dir / PORT_FILE).read_text())
    door_url = f"https://127.0.0.1:{port}"
    return msgspec.structs.replace(config, door_url=door_url, door_cert=str(quic.cert))


def quic_door_args(tls: SelfSigned) -> tuple[str, ...]:
    """The ``omega serve`` options that open the HTTP/3 door with ``tls``, on any free
    UDP port (written to the data directory's ``http3-port``)."""
    return ("--quic-cert", str(tls.cert), "--quic-key", str(tls.key), "--quic-port", "0")


def _offered_rates(rates: tuple[float, ...], max_rate: float | None) -> list[float]:
    """The positive ``rates`` up to ``max_rate``, in increasing order."""
    stepped = sorted(r for r in rates if r > 0 and (max_rate is None or r <= max_rate))
    if not stepped:
        raise InputError("no offered rate to step through (check --max-rate)")
    return stepped


def _rate_limit(stepped: list[float], viewers: int) -> int:
    """The server's per-viewer sync limit (per ``rate_window``) for this run.

    The fleet syncs in compressed time (every few seconds, where a TV syncs hourly): keep
    the limiter on, with room for the fastest step, so it costs what it costs but never
    answers 429 to a schedule a real fleet would spread over an hour."""
    limit: int = max(
        _default("rate_limit"), math.ceil(1.5 * stepped[-1] / viewers * _default("rate_window"))
    )
    return limit


def _settings(
    config: LoadConfig, *, federation_interval: float | None, workers: int, rate_limit: int
) -> dict[str, Any]:
    """What the run was set to, as the report shows it."""
    return {
        "transport": config.transport,
        "step_seconds": config.step_seconds,
        "p95_limit_ms": config.p95_limit_ms,
        "pull_only": config.pull_only,
        "connections": config.connections,
        "federation_interval": (
            federation_interval
            if federation_interval is not None
            else _default("federation_interval")
        ),
        "workers": workers,
        "rate_limit_per_min": rate_limit,
        "catalog": config.catalog,
        "reports_per_push": 1,
    }


def _report(
    steps: list[dict[str, Any]],
    *,
    viewers: int,
    setup_s: float,
    storage: str,
    settings: dict[str, Any],
) -> dict[str, Any]:
    passed = [s for s in steps if s["passed"]]
    best = max(passed, key=lambda s: s["syncs_per_s"]) if passed else None
    failed = next((s for s in steps if not s["passed"]), None)
    shown = best or (steps[0] if steps else {})
    others = [s["other_cpu_pct"] for s in steps if s.get("other_cpu_pct") is not None]
    stolen = [s["steal_cpu_pct"] for s in steps if s.get("steal_cpu_pct") is not None]
    return {
        "transport": settings.pop("transport"),
        "viewers": viewers,
        "syncs_per_s": best["syncs_per_s"] if best else 0.0,
        "sync_p50_ms": best["p50_ms"] if best else None,
        "sync_p95_ms": best["p95_ms"] if best else None,
        "errors": sum(s["errors"] for s in steps),
        "offered_per_s": best["offered_per_s"] if best else 0.0,
        "limited_by": _limited_by(failed, settings["p95_limit_ms"], len(steps)),
        # Contention-proof figures: the server's CPU per sync (at the best step, else the
        # first), and the most CPU other work on the machine, or the hypervisor (a virtual
        # machine's cores are shared), took during a step (% of a core).
        "server_cpu_ms_per_sync": shown.get("server_cpu_ms_per_sync"),
        # PostgreSQL's own processes (when the bench started it), beside the server's.
        "db_cpu_ms_per_sync": shown.get("db_cpu_ms_per_sync"),
        # Bytes on the wire (TCP payload, or UDP for HTTP/3, both ways, framing included) per
        # sync, and TCP segments (UDP datagrams) per sync, at the same step.
        "wire_bytes_per_sync": shown.get("wire_bytes_per_sync"),
        "wire_segments_per_sync": shown.get("wire_segments_per_sync"),
        "other_cpu_pct_max": max(others) if others else None,
        "steal_cpu_pct_max": max(stolen) if stolen else None,
        "storage": storage,
        "cores": os.cpu_count(),
        "setup_s": setup_s,
        **settings,
        "steps": steps,
    }


def _limited_by(failed: dict[str, Any] | None, limit: float, count: int) -> str:
    if failed is None:
        return f"none: all {count} steps passed (raise --max-rate to go further)"
    rate = failed["offered_per_s"]
    cpu = ""
    if failed.get("server_cpu_pct") is not None:
        cpu = (
            f" (CPU, % of a core: server {failed['server_cpu_pct']:g}, client "
            f"{failed['client_cpu_pct']:g}, other work {failed['other_cpu_pct']:g}, "
            f"stolen by the hypervisor {failed.get('steal_cpu_pct') or 0:g})"
        )
    if failed["errors"]:
        return f"errors at {rate:g}/s: {failed['error_kinds']}{cpu}"
    return f"p95 {failed['p95_ms']:g} ms > {limit:g} ms at {rate:g}/s{cpu}"


def post_codebook(base_url: str, admin_token: str, doc: dict[str, object]) -> None:
    """Publish the codebook document ``doc`` through the admin API; BenchError if refused."""
    answer = httpx.post(
        base_url + "/api/omega/codebook",
        content=msgspec.json.encode(doc),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {admin_token}"},
        timeout=30,
    )
    if answer.status_code != 201:
        raise BenchError(f"publishing the codebook failed: {answer.status_code} {answer.text}")
