"""``omega bench connections``: many devices connected at once to one real ``omega serve``.

:func:`run_connections_bench` starts one constellation process (SQLite, no scheduled
rounds) and ``clients`` client processes (:mod:`omega.bench._conn_client`), which
register the fleet and then give every device a connection of its own over one door:
an HTTP/1.1 keep-alive connection, a gRPC channel holding the device's ``StreamSync``
stream, or a QUIC connection. With every connection open, a share of the devices syncs
at a modest rate on them. The server's memory and file descriptors are read from
``/proc/<pid>`` before and after the connections open; its CPU per opened connection,
while idle, and per sync, from ``/proc/<pid>/stat``. Every process of the run (this one,
the server, the clients) raises its soft open-file limit to the hard one.

:func:`extrapolate` scales what one run measured to ``connections`` per node; the
arithmetic is in the report, each figure beside the measured ones it came from.
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
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgspec
import numpy as np

from omega.bench._conn_client import ClientConfig, raise_open_files
from omega.bench._cpu import CpuMeter
from omega.bench.certs import self_signed
from omega.bench.loadgen import MANUFACTURER, LoadConfig
from omega.bench.server import (
    _CODEBOOK_ID,
    CATALOG,
    _door,
    _publish_codebook,
    quic_door_args,
    server_command,
    trust_manufacturer,
)
from omega.bench.serving import BenchError, ServerProcess, free_port
from omega.constellation import Settings, load_admin_token, load_keys
from omega.constellation.doors.http3 import PORT_FILE
from omega.errors import InputError
from omega.protocol.attestation import Manufacturer

__all__ = ["DEFAULT_INTERVAL", "extrapolate", "run_connections_bench"]

#: Devices' sync interval the extrapolation assumes (``omega.sync.SyncSchedule``'s 30 min).
DEFAULT_INTERVAL = 1800.0
#: Seconds an idle connection is kept open by both sides during a run (the server's HTTP
#: keep-alive and gRPC stream idle limits are raised to it for the run).
_HOLD = 900
#: The server's per-viewer sync limit: the syncing devices sync every few seconds here.
_RATE_LIMIT = 10_000
#: Connections each client process opens at once. A QUIC handshake costs the server
#: ~5 ms of pure-Python CPU: 64 at once per client left handshakes waiting past the
#: device's 5 s connect timeout (9,646 of 10,000 failed), so QUIC opens a few at a time.
_OPEN_CONCURRENCY = {"http": 64, "grpc": 64, "quic": 4}

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class _Server:
    rss_kb: int
    fds: int
    #: Of which sockets: what a held connection adds (SQLite files a worker thread opens
    #: on its first request are descriptors too, but no connection's).
    sockets: int
    cpu_s: float
    db_bytes: int  # the SQLite files' sizes (WAL included)


def _is_socket(fd: Path) -> bool:
    try:
        return os.readlink(fd).startswith("socket:")
    except OSError:  # closed meanwhile
        return False


def _read_server(pid: int, data_dir: Path) -> _Server:
    fds = list(Path(f"/proc/{pid}/fd").iterdir())
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    cpu = CpuMeter([pid]).snapshot().server
    return _Server(
        rss_kb=rss,
        fds=len(fds),
        sockets=sum(1 for fd in fds if _is_socket(fd)),
        cpu_s=cpu or 0.0,
        db_bytes=sum(path.stat().st_size for path in data_dir.rglob("*.db*")),
    )


def _settled(pid: int, data_dir: Path, *, within: float = 15.0, steady: float = 1.0) -> _Server:
    """The server once its descriptors have not changed for ``steady`` seconds (waiting
    at most ``within``): the registration's shared connections, closed by the clients,
    may take a moment to close on the server's side — longer on a busy machine, where
    one unchanged 0.2 s glimpse once counted 4 of them as held — and must not count."""
    deadline = time.monotonic() + within
    last = _read_server(pid, data_dir)
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = _read_server(pid, data_dir)
        if now.fds != last.fds:
            since = time.monotonic()
        elif time.monotonic() - since >= steady:
            return now
        last = now
    return last


def _check(
    devices: int, transport: str, clients: int, share: float, rate: float, seconds: float
) -> None:
    if devices < 1:
        raise InputError(f"--devices must be ≥ 1, got {devices}")
    if not 1 <= clients <= devices:
        raise InputError(f"--clients must be between 1 and --devices ({devices}), got {clients}")
    if not 0 <= share <= 1:
        raise InputError(f"--sync-share must be in [0, 1], got {share}")
    if rate < 0 or seconds <= 0:
        raise InputError("--rate must be ≥ 0 and --seconds > 0")
    _door(transport, 1)


@contextlib.contextmanager
def _serve(data_dir: Path, transport: str) -> Iterator[tuple[ServerProcess, str, str]]:
    """One ``omega serve`` with ``transport``'s door; yields it, the door's address and
    the door's certificate (a PEM file; "" for a door without TLS)."""
    settings = Settings(data_dir=data_dir)
    load_keys(settings)
    load_admin_token(settings)
    door_args, door_url = _door(transport, 1)
    tls = self_signed(data_dir / "tls") if transport == "quic" else None
    if tls is not None:
        door_args = quic_door_args(tls)
    port = free_port()
    command, env = server_command(
        port=port,
        data_dir=data_dir,
        db_url=None,
        federation_interval=0,
        workers=1,
        rate_limit=_RATE_LIMIT,
        door_args=door_args,
    )
    env["OMEGA_HTTP_KEEP_ALIVE"] = str(_HOLD)
    env["OMEGA_GRPC_STREAM_IDLE"] = str(_HOLD)
    server = ServerProcess(
        command, env=env, base_url=f"http://127.0.0.1:{port}", log_path=data_dir / "server.log"
    )
    try:
        server.start()
        if tls is not None:
            door_url = f"https://127.0.0.1:{int((data_dir / PORT_FILE).read_text())}"
        yield server, door_url, str(tls.cert) if tls is not None else ""
    finally:
        server.stop()


class _Clients:
    """The client processes, driven phase by phase (see :mod:`omega.bench._conn_client`)."""

    def __init__(self, configs: list[ClientConfig], log_dir: Path) -> None:
        self.logs: list[Path] = []
        self.processes: list[subprocess.Popen[str]] = []
        for i, config in enumerate(configs):
            log = log_dir / f"client-{i}.log"
            self.logs.append(log)
            with log.open("wb") as err:
                command = [sys.executable, "-m", "omega.bench._conn_client"]
                self.processes.append(
                    subprocess.Popen(
                        [*command, msgspec.json.encode(config).decode()],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=err,
                        text=True,
                    )
                )

    def phase(self, command: str | None, event: str) -> list[dict[str, Any]]:
        """Send ``command`` to every client (None: none), then read each one's ``event``."""
        if command is not None:
            for process in self.processes:
                self._write(process.stdin, command)
        found = []
        for process, log in zip(self.processes, self.logs, strict=True):
            assert process.stdout is not None
            line = process.stdout.readline()
            if not line:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
                raise BenchError(f"a client process ended before {event!r}:\n{tail}")
            answer = json.loads(line)
            if answer.pop("event") != event:
                raise BenchError(f"a client answered {line!r}, expected {event!r}")
            found.append(answer)
        return found

    @staticmethod
    def _write(stream: IO[str] | None, command: str) -> None:
        assert stream is not None
        stream.write(command + "\n")
        stream.flush()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()


def _configs(
    base: LoadConfig, *, devices: int, clients: int, share: float, rate: float, seconds: float
) -> list[ClientConfig]:
    """Each client's slice of the fleet, of the syncing devices and of the rate."""
    sizes = [devices // clients + (i < devices % clients) for i in range(clients)]
    syncing = round(share * devices)
    configs = []
    for i, size in enumerate(sizes):
        mine = min(size, syncing // clients + (i < syncing % clients))
        load = msgspec.structs.replace(
            base, viewers=size, device_prefix=f"conn-{i}-", seed=base.seed + i
        )
        configs.append(
            ClientConfig(
                load=load,
                syncing=mine,
                rate=rate * mine / syncing if syncing else 0.0,
                seconds=seconds,
                hold=_HOLD,
                open_concurrency=_OPEN_CONCURRENCY[base.transport],
            )
        )
    return configs


def run_connections_bench(
    *,
    devices: int = 10_000,
    transport: str = "http",
    clients: int | None = None,
    sync_share: float = 0.1,
    rate: float = 50.0,
    seconds: float = 20.0,
    idle_seconds: float = 5.0,
    interval: float = DEFAULT_INTERVAL,
    target: int = 100_000,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Open ``devices`` connections to one server, sync a share on them; report (see the
    module docstring). ``clients``: client processes (default one per 2,500 devices)."""
    clients = clients or max(1, math.ceil(devices / 2_500))
    _check(devices, transport, clients, sync_share, rate, seconds)
    say = progress or (lambda _: None)
    limits = raise_open_files()
    with contextlib.ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="omega-conns-")))
        say("starting the server…")
        server, door_url, cert = stack.enter_context(_serve(data_dir, transport))
        admin = (data_dir / "admin-token").read_text().strip()
        _publish_codebook(server.base_url, admin, seed=seed)
        maker = Manufacturer.generate(MANUFACTURER, "k1")
        trust_manufacturer(server.base_url, admin, maker)
        base = LoadConfig(
            base_url=server.base_url,
            transport=transport,
            door_url=door_url,
            door_cert=cert,
            codebook_id=_CODEBOOK_ID,
            viewers=devices,
            rates=[rate],
            step_seconds=seconds,
            connections=8,
            timeout=30.0,
            seed=seed,
            catalog=CATALOG,
            manufacturer_key=maker.key.private_bytes_raw(),
        )
        configs = _configs(
            base, devices=devices, clients=clients, share=sync_share, rate=rate, seconds=seconds
        )
        pid = server.process.pid
        start = _read_server(pid, data_dir)
        fleet = _Clients(configs, data_dir)
        stack.callback(fleet.stop)
        say(f"registering {devices} devices from {clients} client processes…")
        phases: dict[str, list[dict[str, Any]]] = {"registered": fleet.phase(None, "registered")}
        marks = {"start": start, "before": _settled(pid, data_dir)}
        say(f"opening {devices} {transport} connections…")
        phases["opened"] = fleet.phase("open", "opened")
        marks["open"] = _read_server(pid, data_dir)
        time.sleep(idle_seconds)  # every connection open, none used: what holding costs
        marks["idle"] = _read_server(pid, data_dir)
        say(f"syncing {round(sync_share * devices)} devices at {rate:g}/s for {seconds:g} s…")
        sync_started = time.monotonic()
        phases["synced"] = fleet.phase("sync", "synced")
        sync_wall = time.monotonic() - sync_started
        marks["synced"] = _read_server(pid, data_dir)
        say("checking every connection…")
        phases["checked"] = fleet.phase("check", "checked")
        marks["checked"] = _read_server(pid, data_dir)
        phases["closed"] = fleet.phase("close", "closed")
    report = _report(
        phases,
        marks,
        transport=transport,
        devices=devices,
        idle_seconds=idle_seconds,
        sync_wall=sync_wall,
        offered=rate,
        syncing=sum(c.syncing for c in configs),
        limits=limits,
    )
    report["extrapolation"] = extrapolate(report, connections=target, interval=interval)
    return report


def _kinds(answers: list[dict[str, Any]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for answer in answers:
        total.update(answer["error_kinds"])
    return dict(total)


def _report(
    phases: Mapping[str, list[dict[str, Any]]],
    marks: Mapping[str, _Server],
    *,
    transport: str,
    devices: int,
    idle_seconds: float,
    sync_wall: float,
    offered: float,
    syncing: int,
    limits: dict[str, int],
) -> dict[str, Any]:
    before, opened, idle, synced = marks["before"], marks["open"], marks["idle"], marks["synced"]
    open_errors = sum(_kinds(phases["opened"]).values())
    held = devices - open_errors
    idle_pct = 100 * (idle.cpu_s - opened.cpu_s) / idle_seconds
    synced_all = phases["synced"]
    latencies = [v for answer in synced_all for v in answer["latencies_ms"]]
    syncs = sum(answer["syncs"] for answer in synced_all)
    patterns = sum(answer["patterns"] for answer in synced_all)
    sync_cpu = (synced.cpu_s - idle.cpu_s) - idle_pct / 100 * sync_wall
    client_open_rss = sum(a["rss_kb"] for a in phases["opened"]) - sum(
        a["rss_kb"] for a in phases["registered"]
    )
    client_open_cpu = sum(a["cpu_s"] for a in phases["opened"]) - sum(
        a["cpu_s"] for a in phases["registered"]
    )
    checked = phases["checked"]

    def pct(q: float) -> float | None:
        return round(float(np.percentile(latencies, q)), 2) if latencies else None

    return {
        "transport": transport,
        "devices": devices,
        "connections_held": held,
        "open_errors": open_errors,
        "open_error_kinds": _kinds(phases["opened"]),
        "open_seconds": max(a["seconds"] for a in phases["opened"]),
        "registration_seconds": max(a["seconds"] for a in phases["registered"]),
        "server_rss_mb_before": round(before.rss_kb / 1024, 1),
        "server_rss_mb_open": round(opened.rss_kb / 1024, 1),
        "server_rss_mb_end": round(marks["checked"].rss_kb / 1024, 1),
        "server_kb_per_connection": round((opened.rss_kb - before.rss_kb) / max(held, 1), 2),
        "server_fds_before": before.fds,
        "server_fds_open": opened.fds,
        "server_fds_end": marks["checked"].fds,
        # Sockets, not every descriptor: in one CI run a thread's first request opened
        # the SQLite files (4 descriptors) while 60 QUIC connections opened.
        "server_fds_per_connection": round((opened.sockets - before.sockets) / max(held, 1), 3),
        "server_open_cpu_ms_per_connection": round(
            1000 * (opened.cpu_s - before.cpu_s) / max(held, 1), 3
        ),
        "server_idle_cpu_pct": round(idle_pct, 2),
        "syncing_devices": syncing,
        "offered_per_s": offered,
        "syncs": syncs,
        "syncs_per_s": round((syncs - sum(_kinds(synced_all).values())) / sync_wall, 1),
        "sync_p50_ms": pct(50),
        "sync_p95_ms": pct(95),
        "sync_p99_ms": pct(99),
        "errors": sum(_kinds(synced_all).values()),
        "error_kinds": _kinds(synced_all),
        "server_cpu_ms_per_sync": round(1000 * sync_cpu / syncs, 3) if syncs else None,
        # Rough: file growth, WAL included (SQLite reuses freed pages, the WAL repeats some).
        "sqlite_bytes_per_viewer": round((before.db_bytes - marks["start"].db_bytes) / devices, 1),
        "patterns_pushed": patterns,
        "sqlite_bytes_per_pattern": round((synced.db_bytes - idle.db_bytes) / patterns, 1)
        if patterns
        else None,
        "check_errors": sum(_kinds(checked).values()),
        "check_error_kinds": _kinds(checked),
        "reopened": sum(a["reopened"] for a in checked),
        "client_processes": len(phases["opened"]),
        "client_kb_per_connection": round(client_open_rss / max(held, 1), 2),
        "client_open_cpu_ms_per_connection": round(1000 * client_open_cpu / max(held, 1), 3),
        "client_rss_mb_open": round(sum(a["rss_kb"] for a in phases["opened"]) / 1024, 1),
        "open_files_limit": {
            **limits,
            "note": "RLIMIT_NOFILE soft limit raised to the hard one in the bench, the "
            "server it starts and each client process (resource.setrlimit)",
        },
        "server_keep_alive_s": _HOLD,
    }


def extrapolate(
    report: Mapping[str, Any], *, connections: int = 100_000, interval: float = DEFAULT_INTERVAL
) -> dict[str, Any]:
    """One server process holding ``connections`` devices that sync every ``interval``
    seconds, scaled linearly from ``report``'s measured figures, with the arithmetic."""
    scale = connections / max(report["connections_held"], 1)
    kb = report["server_kb_per_connection"]
    memory_mb = report["server_rss_mb_before"] + kb * connections / 1024
    fds = report["server_fds_before"] + report["server_fds_per_connection"] * connections
    idle_cores = report["server_idle_cpu_pct"] / 100 * scale
    rate = connections / interval
    cpu_ms = report["server_cpu_ms_per_sync"] or 0.0
    sync_cores = rate * cpu_ms / 1000
    storm_s = report["server_open_cpu_ms_per_connection"] * connections / 1000
    cores = idle_cores + sync_cores
    return {
        "connections": connections,
        "sync_interval_s": interval,
        "server_memory_mb": round(memory_mb, 1),
        "server_memory_arithmetic": f"{report['server_rss_mb_before']} MB + {kb} KB × "
        f"{connections:,} / 1024 = {memory_mb:,.0f} MB",
        "server_fds": round(fds),
        "server_fds_arithmetic": f"{report['server_fds_before']} + "
        f"{report['server_fds_per_connection']} × {connections:,} = {fds:,.0f}",
        "syncs_per_s": round(rate, 1),
        "server_cores": round(cores, 3),
        "server_cores_arithmetic": f"idle {report['server_idle_cpu_pct']} % × {scale:g} / 100 "
        f"+ {connections:,} / {interval:g} s × {cpu_ms} ms = {idle_cores:.3f} + "
        f"{sync_cores:.3f} = {cores:.3f} cores",
        "reconnect_all_cpu_s": round(storm_s, 1),
        "reconnect_all_arithmetic": f"{report['server_open_cpu_ms_per_connection']} ms × "
        f"{connections:,} = {storm_s:,.0f} s of one core to open every connection again",
        "client_memory_mb": round(report["client_kb_per_connection"] * connections / 1024, 1),
        "fits_one_process": cores < 1.0,
    }
