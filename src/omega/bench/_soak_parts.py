"""The soak's parts: the plan, the helper and server it starts, and the held rate.

:func:`start_parts` starts ``omega helper serve``, then ``omega serve`` wired to it (its
store migrated and the audit log of :mod:`omega.bench._soak_audit` added before it
first starts), publishes the brains' codebook with its catalog order (what two-server
reports name titles by) and trusts the bench's manufacturer, which attests every device.
:func:`probe_held_rate` gives the rate the soak takes its share of: given, or what
``omega bench server``'s step-up probe holds against this very server, through the
soak's proxy.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from omega.bench._cpu import process_tree
from omega.bench._soak_audit import install
from omega.bench.faults import ResetProxy
from omega.bench.fleet_restart import _publish_codebook, _shared_catalog
from omega.bench.loadgen import MANUFACTURER, LoadConfig
from omega.bench.server import _rate_limit, _run_loadgen, server_command, trust_manufacturer
from omega.bench.server import _report as _probe_report
from omega.bench.server import _settings as _probe_settings
from omega.bench.serving import BenchError, ServerProcess, free_port
from omega.brain import SharedCatalog
from omega.constellation import Settings, load_admin_token, load_keys
from omega.helper.app import info_of
from omega.protocol.attestation import Manufacturer
from omega.storage import open_storage

__all__ = [
    "Child",
    "Parts",
    "Progress",
    "SoakPlan",
    "load_config",
    "probe_held_rate",
    "start_parts",
]

Progress = Callable[[str, Mapping[str, Any]], None]
_CELLS = 256  # the cells the cheap devices' patterns use (omega.bench.sync)


@dataclass(frozen=True, slots=True, kw_only=True)
class SoakPlan:
    """What ``run_soak`` was asked for, with the defaults resolved."""

    minutes: float
    held_rate: float | None
    load: float
    devices: int
    brains: int
    db_url: str | None
    restarts: int
    reset_bursts: int
    server_down: float
    helper_down: float
    federation_interval: float
    share_fraction: float
    min_batch: int
    brain_interval: float
    watch_every: float
    probe_rates: tuple[float, ...]
    probe_seconds: float
    p95_limit_ms: float
    connections: int
    drain_timeout: float
    seed: int

    @property
    def duration(self) -> float:
        return self.minutes * 60.0


@dataclass
class Child:
    """A server the soak kills and starts again (``omega serve``, ``omega helper
    serve``): its process, how often it was started, and the children its killed selves
    left running (a server's round child finishes its round on its own)."""

    process: ServerProcess
    starts: int = 0
    started_at: float = 0.0  # when it last started (monotonic)
    orphans: list[int] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.process.base_url

    @property
    def pid(self) -> int | None:
        """The running process's id (None when it is down)."""
        try:
            child = self.process.process
        except BenchError:
            return None
        return child.pid if child.poll() is None else None

    def start(self) -> None:
        self.process.start()
        self.starts += 1
        self.started_at = time.monotonic()

    def kill(self) -> None:
        """SIGKILL from outside, the process alone, as the OOM killer would."""
        pid = self.pid
        if pid is not None:
            self.orphans += process_tree(pid)[1:]
        self.process.kill()

    def stop(self) -> None:
        """SIGTERM; orphans still running are SIGKILLed (a round is safe to kill
        anywhere: it publishes nothing half-way)."""
        self.process.stop()
        for pid in self.orphans:
            _end_orphan(pid)


def _end_orphan(pid: int) -> None:
    """SIGKILL ``pid`` if it is still one of Omega's Python processes (ids are reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return  # gone
    if b"omega" in cmdline:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return


def _serve_child(plan: SoakPlan, data_dir: Path, env: dict[str, str]) -> Child:
    """``omega serve`` on a free port and ``data_dir`` (not started yet)."""
    stepped = list(plan.probe_rates) if plan.held_rate is None else [plan.held_rate]
    port = free_port()
    command, full_env = server_command(
        port=port,
        data_dir=data_dir,
        db_url=plan.db_url,
        federation_interval=plan.federation_interval,
        workers=1,
        rate_limit=_rate_limit(stepped, plan.devices),
    )
    full_env.update(env)
    url = f"http://127.0.0.1:{port}"
    return Child(
        ServerProcess(command, env=full_env, base_url=url, log_path=data_dir / "server.log")
    )


def _helper_child(data_dir: Path, *, min_batch: int) -> Child:
    """``omega helper serve`` on a free port and ``data_dir`` (not started yet)."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-c", "from omega.cli.main import run; run()", "helper", "serve"]
    command += ["--data-dir", str(data_dir), "--port", str(port), "--min-batch", str(min_batch)]
    command += ["--log-level", "warning", "--json"]
    url = f"http://127.0.0.1:{port}"
    log = data_dir / "helper.log"
    return Child(ServerProcess(command, env=dict(os.environ), base_url=url, log_path=log))


@dataclass(kw_only=True)
class Parts:
    """The servers and what the devices need from them."""

    root: Path
    helper: Child
    server: Child
    db_url: str
    token: str
    shared: SharedCatalog
    maker: Manufacturer
    rate_limit: int
    helper_key: bytes = b""  # its X25519 public key, read once it runs

    def stop(self) -> None:
        self.server.stop()
        self.helper.stop()


def start_parts(plan: SoakPlan, root: Path) -> Parts:
    """Helper, then server (its store migrated and the audit log added before it
    starts), the codebook published with its catalog order, the bench's maker trusted."""
    server_dir = root / "server"
    server_dir.mkdir()
    settings = Settings(data_dir=server_dir)
    load_keys(settings)
    stepped = list(plan.probe_rates) if plan.held_rate is None else [plan.held_rate]
    helper = _helper_child(root / "helper", min_batch=plan.min_batch)
    server = _serve_child(
        plan,
        server_dir,
        {
            "OMEGA_HELPER_URL": helper.base_url,
            "OMEGA_HELPER_SECRET_FILE": str(root / "helper" / "aggregation-secret"),
            "OMEGA_SHARE_MIN_BATCH": str(plan.min_batch),
            "OMEGA_SYNC_INTERVAL": str(plan.brain_interval / 2),  # the brains' pace
        },
    )
    parts = Parts(
        root=root,
        helper=helper,
        server=server,
        db_url=plan.db_url or f"sqlite:///{server_dir / 'constellation.db'}",
        token=load_admin_token(settings),
        shared=_shared_catalog(plan.seed, _CELLS),
        maker=Manufacturer.generate(MANUFACTURER, "k1"),
        rate_limit=_rate_limit(stepped, plan.devices),
    )
    try:
        helper.start()
        info = info_of(httpx.get(helper.base_url + "/helper/v1/info", timeout=30).content)
        parts.helper_key = info.public_key
        open_storage(parts.db_url).close()
        install(parts.db_url)
        server.start()
        _publish_codebook(server.base_url, parts.token, parts.shared, item_ids=True)
        trust_manufacturer(server.base_url, parts.token, parts.maker)
    except BaseException:
        parts.stop()
        raise
    return parts


def load_config(plan: SoakPlan, parts: Parts, base_url: str, *, probe: bool) -> LoadConfig:
    return LoadConfig(
        base_url=base_url,
        codebook_id=parts.shared.codebook_id,
        viewers=plan.devices,
        rates=list(plan.probe_rates) if probe else [],
        step_seconds=plan.probe_seconds,
        p95_limit_ms=plan.p95_limit_ms,
        connections=plan.connections,
        seed=plan.seed if probe else plan.seed + 1,
        server_pids=[parts.server.pid] if probe and parts.server.pid else [],
        catalog=len(parts.shared.catalog.ids),
        manufacturer_key=parts.maker.key.private_bytes_raw(),
        device_prefix="probe-" if probe else "soak-",
    )


async def probe_held_rate(
    plan: SoakPlan, parts: Parts, proxy: ResetProxy, say: Progress
) -> tuple[float, dict[str, Any]]:
    """The rate to take 70 % of: given, or what the server bench's probe held."""
    if plan.held_rate is not None:
        return plan.held_rate, {"source": "given (--held-rate)"}
    config = load_config(plan, parts, proxy.url, probe=True)
    log = parts.root / "probe.log"
    ready, steps = await asyncio.to_thread(_run_loadgen, config, log, say, None)
    found = _probe_report(
        steps,
        viewers=plan.devices,
        setup_s=float(ready.get("setup_s", 0.0)),
        storage="postgresql" if plan.db_url else "sqlite",
        settings=_probe_settings(
            config,
            federation_interval=plan.federation_interval,
            workers=1,
            rate_limit=parts.rate_limit,
        ),
    )
    held = float(found["syncs_per_s"])
    if held <= 0:
        raise BenchError(f"the probe held no rate ({found['limited_by']}): give --held-rate")
    probe = {k: found[k] for k in ("syncs_per_s", "sync_p95_ms", "offered_per_s", "limited_by")}
    probe["steps"] = [
        {k: s[k] for k in ("offered_per_s", "syncs_per_s", "p95_ms", "errors", "passed")}
        for s in steps
    ]
    return held, {
        "source": "probe: omega bench server's load generator, through the proxy",
        **probe,
    }
