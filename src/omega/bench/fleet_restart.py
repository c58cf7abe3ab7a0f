"""``omega bench fleet-restart``: a fleet of device runtimes rides out a server SIGKILL.

One process runs ``devices`` TVs. Each is a real :class:`~omega.brain.Brain` — its own
``brain.db``, learning from its own viewing — sharing one read-only catalog, as the
simulator's fleet does (so no embedding model is loaded), and each is kept syncing by
its own :class:`~omega.sync.DeviceRuntime`, over real HTTP on loopback (one shared
connection pool) to ``omega serve`` in a child process (SQLite in a temporary data
directory, no rounds). The bench acts as the TVs' maker: it registers a manufacturer key
with the server and every TV registers attested by it. The run:

1. **steady**: the fleet starts, first syncs spread over one ``interval``; the next
   ``steady`` seconds give the steady rate;
2. **outage**: the server is SIGKILLed from outside; the households watch on (new
   patterns queue in every outbox); ``outage`` seconds later ``omega serve`` starts
   again on the same port and data directory;
3. **recovery**: ``after`` seconds, with no intervention; then any device with changes
   still queued (a push carries at most ~1 KB) is asked to ``sync_now`` until its
   outbox is empty, every runtime stops, the server stops.

Reported: sync attempts per second (successes and failures, counted by the devices):
the steady rate; in the first ``window`` seconds after the restart, the mean and the
busiest 1-s and 5-s bins, each also as a ratio to the steady rate; how long until every
device that failed had synced again; and the audit — the server's stored contributions
(its SQLite file, read after it stopped) against what every brain shared: patterns
lost, patterns stored twice, outboxes left.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from omega.bench._fresh_tv import rss_mb
from omega.bench.server import post_codebook, server_command, trust_manufacturer
from omega.bench.serving import BenchError, ServerProcess, free_port
from omega.brain import Brain, BrainConfig, CatalogItem, SharedCatalog
from omega.clock import ManualClock, SystemClock
from omega.constellation import Settings, load_admin_token, load_keys
from omega.errors import InputError
from omega.protocol import EMBEDDING_DIM
from omega.protocol.attestation import DeviceIdentity, Manufacturer
from omega.protocol.messages import Pattern
from omega.sync import DeviceRuntime, HttpTransport, RuntimeStatus, SyncSchedule, Transport
from omega.sync.cursors import load_credentials

__all__ = ["run_fleet_restart"]

_CELLS, _PER_CELL = 16, 8
Progress = Callable[[str, Mapping[str, Any]], None]


# -- the fleet ------------------------------------------------------------------------------
def _shared_catalog(seed: int, cells: int = _CELLS) -> SharedCatalog:
    """``_PER_CELL`` titles around each of ``cells`` cells, so what a TV learns is
    predictable."""
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(cells, EMBEDDING_DIM)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    centroids = centroids.astype("<f2").astype(np.float32)  # as the server stores them
    vectors = np.repeat(centroids, _PER_CELL, axis=0)
    vectors += 0.02 * rng.normal(size=vectors.shape).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [
        CatalogItem(item_id=f"c{c}i{n}", title=f"Title {c}-{n}", genres=("Drama",), runtime_min=100)
        for c in range(cells)
        for n in range(_PER_CELL)
    ]
    return SharedCatalog(items, vectors, centroids)


def _watch(
    brain: Brain, clock: ManualClock, cells: list[int], *, rounds: int = 3, first: int = 0
) -> None:
    """Titles of ``cells`` watched nearly to the end, ``rounds`` times over (from the
    ``first``-th title of each cell), 30 min apart."""
    for r in range(first, first + rounds):
        for cell in cells:
            brain.track_view(f"c{cell}i{r % _PER_CELL}", watch_fraction=0.95)
            clock.advance(1800)


@dataclass
class _Device:
    brain: Brain
    clock: ManualClock  # the household's time (watching moves it); syncs run on wall time
    cells: list[int]
    identity: DeviceIdentity  # its certificate from the bench's manufacturer, and its key
    runtime: DeviceRuntime | None = None
    last: tuple[int, int] = (0, 0)  # syncs, failures seen so far
    began: float = 0.0  # when the attempt under way started


@dataclass
class _Log:
    """Every sync attempt of the fleet: (monotonic time it started, device, succeeded).

    Start times: the load the fleet offers, which is what a thundering herd is about
    (when the answers came also depends on how fast the server got through them)."""

    attempts: list[tuple[float, int, bool]] = field(default_factory=list)

    def listener(self, device: _Device, index: int) -> Callable[[RuntimeStatus], None]:
        def heard(status: RuntimeStatus) -> None:
            syncs, failures = device.last
            if status.state == "syncing":
                device.began = time.monotonic()
            elif status.syncs > syncs:
                self.attempts.append((device.began, index, True))
            elif status.failures > failures:
                self.attempts.append((device.began, index, False))
            device.last = (status.syncs, status.failures)

        return heard


def _open_fleet(
    root: Path, devices: int, shared: SharedCatalog, maker: Manufacturer, seed: int
) -> list[_Device]:
    rng = random.Random(seed)
    fleet = []
    cells = len(shared.centroids)
    config = BrainConfig(codebook_cells=cells)
    for n in range(devices):
        clock = ManualClock()
        brain = Brain.open(root / f"tv-{n}", clock=clock, config=config, shared_catalog=shared)
        identity = maker.device(f"fleet-tv-{n}", model="bench-tv")
        device = _Device(brain, clock, rng.sample(range(cells), 6), identity)
        _watch(brain, clock, device.cells[:3])
        fleet.append(device)
    return fleet


# -- the server -----------------------------------------------------------------------------
@contextlib.contextmanager
def _serving(data_dir: Path, pace: float) -> Iterator[tuple[ServerProcess, str]]:
    """``omega serve`` in a child process (no rounds; it asks devices to sync every
    ``pace`` seconds), restartable on the same port and data directory; and its admin
    token. Stopped on the way out, even when it never answered."""
    settings = Settings(data_dir=data_dir)
    load_keys(settings)
    token = load_admin_token(settings)
    port = free_port()
    command, env = server_command(
        port=port, data_dir=data_dir, db_url=None, federation_interval=0, workers=1, rate_limit=600
    )
    env["OMEGA_SYNC_INTERVAL"] = str(pace)
    server = ServerProcess(
        command, env=env, base_url=f"http://127.0.0.1:{port}", log_path=data_dir / "server.log"
    )
    try:
        server.start()
        yield server, token
    finally:
        server.stop()


def _publish_codebook(
    base_url: str, token: str, shared: SharedCatalog, *, item_ids: bool = False
) -> None:
    """The brains' codebook, as the current one; ``item_ids``: with the catalog's order
    (what two-server reports name titles by)."""
    doc: dict[str, Any] = {
        "codebook_id": shared.codebook_id,  # the brains' own name for it: nothing to adopt
        "dim": EMBEDDING_DIM,
        "k": len(shared.centroids),
        "centroids_f16": shared.centroids.astype("<f2").tobytes(),
    }
    if item_ids:
        doc["item_ids"] = list(shared.catalog.ids)
    post_codebook(base_url, token, doc)


# -- the run --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    devices: int
    interval: float
    steady: float
    outage: float
    window: float
    after: float
    base: float
    cap: float
    tick: float
    seed: int


def _run_runtimes(
    fleet: list[_Device],
    transport: Transport,
    schedule: SyncSchedule,
    *,
    tick: float,
    seed: int,
    log: _Log,
    **sync_options: Any,
) -> list[asyncio.Task[None]]:
    """A runtime per device on this event loop (each with its own seeded jitter and its
    certificate; ``sync_options`` for every ``SyncClient``): their ``run()`` tasks."""
    tasks = []
    for n, device in enumerate(fleet):
        device.runtime = DeviceRuntime(
            device.brain,
            transport,
            schedule=schedule,
            tick=tick,
            clock=SystemClock(),
            rng=random.Random(seed * 1_000_003 + n),
            on_status=log.listener(device, n),
            sync_options={"attestation": device.identity, **sync_options},
        )
        tasks.append(asyncio.create_task(device.runtime.run()))
    return tasks


async def _drive(
    fleet: list[_Device], server: ServerProcess, plan: _Plan, log: _Log, progress: Progress
) -> tuple[dict[str, float], int]:
    """Start every runtime, kill and restart the server on cue; the run's time marks and
    how many devices needed a ``sync_now`` to empty their outbox at the end."""
    transport = HttpTransport(server.base_url)
    schedule = SyncSchedule(
        interval=plan.interval, base=plan.base, cap=plan.cap, first_delay=plan.interval
    )
    tasks = _run_runtimes(fleet, transport, schedule, tick=plan.tick, seed=plan.seed, log=log)
    marks: dict[str, float] = {"started": time.monotonic()}
    try:
        await asyncio.sleep(plan.interval + plan.steady)
        marks["steady_from"] = marks["started"] + plan.interval
        marks["steady_to"] = marks["killed"] = time.monotonic()
        await asyncio.to_thread(server.kill)  # SIGKILL from outside, as the OOM killer would
        progress("killed", {"attempts": len(log.attempts)})
        for device in fleet:  # the households watch on, a few at a time
            await asyncio.to_thread(_watch, device.brain, device.clock, device.cells[3:])
        await asyncio.sleep(max(0.0, marks["killed"] + plan.outage - time.monotonic()))
        marks["restarting"] = time.monotonic()
        await asyncio.to_thread(server.start)
        marks["healthy"] = time.monotonic()
        progress("restarted", {"outage_s": round(marks["healthy"] - marks["killed"], 1)})
        await asyncio.sleep(max(0.0, marks["restarting"] + plan.after - time.monotonic()))
        marks["observed"] = time.monotonic()
        drained = await _drain(fleet)
    finally:
        for device in fleet:
            if device.runtime is not None:
                device.runtime.stop()
        ends = await asyncio.gather(*tasks, return_exceptions=True)
        await transport.aclose()
    broken = [e for e in ends if isinstance(e, BaseException)]
    if broken:
        raise BenchError(f"{len(broken)} device runtimes stopped on an error: {broken[0]!r}")
    return marks, drained


async def _drain(fleet: list[_Device], errors: list[str] | None = None) -> int:
    """Ask devices with changes still queued (or a batch unanswered) to sync until none is
    left; how many needed it. A push carries ~1 KB, so a TV that watched a lot between
    two syncs empties its outbox over several. ``errors`` keeps what a sync answered with
    instead of a result (a device that cannot empty its outbox must say why)."""
    needed: set[int] = set()
    for _ in range(20):
        behind = [
            n
            for n, d in enumerate(fleet)
            if d.brain.sync.outbox_size() or d.brain.sync.inflight() is not None
        ]
        if not behind:
            break
        needed.update(behind)
        asks = []
        for n in behind:
            runtime = fleet[n].runtime
            assert runtime is not None
            asks.append(asyncio.wrap_future(runtime.sync_now()))
        answers = await asyncio.gather(*asks, return_exceptions=True)
        if errors is not None:
            errors.extend(
                f"{type(a).__name__}: {a}" for a in answers if isinstance(a, BaseException)
            )
    return len(needed)


# -- what it measured -----------------------------------------------------------------------
def _rates(log: _Log, marks: dict[str, float], plan: _Plan) -> dict[str, Any]:
    """Steady rate, and the reconnect after the restart against it."""
    times = np.array([t for t, _, _ in log.attempts])
    good = np.array([ok for _, _, ok in log.attempts], dtype=bool)
    steady_s = marks["steady_to"] - marks["steady_from"]
    steady = float(((times >= marks["steady_from"]) & (times < marks["steady_to"])).sum())
    steady_rate = steady / steady_s

    def ratio(rate: float) -> float | None:  # None: no steady rate to compare with
        return round(rate / steady_rate, 2) if steady_rate > 0 else None

    after_kill = times >= marks["killed"]
    # Up: the first success after the kill (devices may get in before /healthz answers).
    up = float(min(times[after_kill & good].min(initial=np.inf), marks["healthy"]))
    in_window = (times >= up) & (times < up + plan.window)
    first = float(in_window.sum()) / plan.window
    peaks: dict[str, float | None] = {}
    for width in (1, 5):
        bins = int(plan.window // width)
        if bins:
            span = (up, up + bins * width)
            counts, _ = np.histogram(times[in_window], bins=bins, range=span)
            peak = float(counts.max(initial=0)) / width
            peaks[f"peak_{width}s_per_s"] = round(peak, 2)
            peaks[f"peak_{width}s_ratio"] = ratio(peak)
    note = {}
    if steady_rate == 0:
        note["ratio_note"] = (
            f"no sync attempt fell in the {steady_s:.1f} s steady window, so there is no "
            "steady rate to compare with: the ratios are null (give the fleet more "
            "devices, or a longer --interval)"
        )
    return {
        "steady_per_s": round(steady_rate, 2),
        "first_window_per_s": round(first, 2),
        "first_window_ratio": ratio(first),
        **note,
        **peaks,
        "failed_attempts": int((~good).sum()),
        "failed_attempts_after_up": int((~good & (times >= up)).sum()),
        "outage_s": round(up - marks["killed"], 1),
        **_recovery(log, marks, up),
    }


def _recovery(log: _Log, marks: dict[str, float], up: float) -> dict[str, Any]:
    """Devices hit by the outage, and how long until the last of them synced again."""
    hit = {n for t, n, ok in log.attempts if not ok and t >= marks["killed"]}
    back: dict[int, float] = {}
    for t, n, ok in log.attempts:
        if ok and n in hit and t >= up and n not in back:
            back[n] = t - up
    return {
        "devices_hit": len(hit),
        "devices_recovered": len(back),
        "recovery_s": round(max(back.values(), default=0.0), 1),
        "recovery_p50_s": round(float(np.median(list(back.values()))), 1) if back else 0.0,
    }


def _shared(brain: Brain) -> tuple[str, list[tuple[str, int]]]:
    """The brain's viewer id, and (pattern id, version) of each pattern it has shared."""
    creds = load_credentials(brain)
    viewer = creds.viewer_id if creds is not None else ""
    return viewer, [(s.id, s.version) for s in brain.learner.bank if s.shared_rate >= 0]


#: The server's stored contributions, as :func:`_audit_rows` reads them (either backend).
STORED_SQL = "SELECT viewer_id, pattern_id, body FROM pending WHERE op = 'upsert'"


def _audit(db_path: Path, fleet: list[_Device]) -> dict[str, int]:
    """The server's stored contributions (read from its file once it stopped) against
    what every brain shared: each shared pattern's latest version must be there, once."""
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as conn:
        rows = conn.execute(STORED_SQL).fetchall()
    return _audit_rows(rows, fleet)


def _audit_rows(rows: list[tuple[str, str, bytes]], fleet: list[_Device]) -> dict[str, int]:
    """:func:`_audit` on rows of :data:`STORED_SQL`, from whichever store."""
    decoder = msgspec.msgpack.Decoder(Pattern)
    stored = Counter((viewer, pid, decoder.decode(body).version) for viewer, pid, body in rows)
    shared = lost = 0
    for device in fleet:
        viewer, versions = _shared(device.brain)
        shared += len(versions)
        lost += sum((viewer, pid, version) not in stored for pid, version in versions)
    return {
        "patterns_shared": shared,
        "contributions_stored": len(rows),
        "patterns_lost": lost,
        "patterns_duplicated": sum(count - 1 for count in stored.values() if count > 1),
        "outbox_left": sum(d.brain.sync.outbox_size() for d in fleet),
        "inflight_left": sum(d.brain.sync.inflight() is not None for d in fleet),
    }


def run_fleet_restart(
    *,
    devices: int = 1000,
    interval: float = 60.0,
    steady: float | None = None,
    outage: float = 30.0,
    window: float = 60.0,
    after: float | None = None,
    base: float = 1.0,
    cap: float = 900.0,
    tick: float = 5.0,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the fleet through a server SIGKILL and restart; see the module docstring.

    ``steady`` defaults to one interval; ``after`` (the recovery observed before the
    drain) to the window plus two intervals."""
    plan = _Plan(
        devices=devices,
        interval=interval,
        steady=interval if steady is None else steady,
        outage=outage,
        window=window,
        after=window + 2 * interval if after is None else after,
        base=base,
        cap=cap,
        tick=tick,
        seed=seed,
    )
    _check(plan)
    report = progress or (lambda event, data: None)
    with tempfile.TemporaryDirectory(prefix="omega-bench-fleet-") as tmp:
        root = Path(tmp)
        shared = _shared_catalog(seed)
        maker = Manufacturer.generate("omega-bench-fleet", "k1")
        started = time.perf_counter()
        fleet = _open_fleet(root / "tvs", devices, shared, maker, seed)
        setup_s = time.perf_counter() - started
        report("fleet", {"devices": devices, "setup_s": round(setup_s, 1)})
        log = _Log()
        try:
            (root / "server").mkdir()
            with _serving(root / "server", pace=interval / 2) as (server, token):
                _publish_codebook(server.base_url, token, shared)
                trust_manufacturer(server.base_url, token, maker)
                marks, drained = asyncio.run(_drive(fleet, server, plan, log, report))
                fleet_rss = rss_mb()  # this process: the brains and their runtimes
            audit = _audit(root / "server" / "constellation.db", fleet)
        finally:
            for device in fleet:
                device.brain.close()
    return {
        "devices": devices,
        **_rates(log, marks, plan),
        **audit,
        "drained_with_sync_now": drained,
        "attempts": len(log.attempts),
        "setup_s": round(setup_s, 1),
        "fleet_rss_mb": round(fleet_rss, 1),
        "settings": {
            "interval_s": interval,
            "jitter": 0.1,
            "steady_s": plan.steady,
            "outage_s": outage,
            "window_s": window,
            "after_s": plan.after,
            "backoff_base_s": base,
            "backoff_cap_s": cap,
            "tick_s": tick,
            "server_pace_s": interval / 2,
            "seed": seed,
        },
    }


#: What ``omega bench fleet-restart`` calls each setting (the others are keyword-only).
_FLAGS = {"interval": "--interval", "outage": "--outage", "window": "--window"}
_FLAGS |= {"after": "--after", "cap": "--backoff-cap"}


def _check(plan: _Plan) -> None:
    """Refuse a bad setting in one sentence naming its flag, before anything is opened."""
    if plan.devices < 1 or plan.seed < 0:
        raise InputError(f"--devices must be ≥ 1 and --seed ≥ 0, got {plan.devices}, {plan.seed}")
    for name in ("interval", "steady", "outage", "window", "after", "base", "cap", "tick"):
        value = getattr(plan, name)
        if not (value > 0 and np.isfinite(value)):
            flag = _FLAGS.get(name, name)
            raise InputError(f"{flag} must be a positive number of seconds, got {value!r}")
    if plan.window < 1 or plan.after < plan.window:
        raise InputError("--window must be ≥ 1 s and --after at least --window")
    if plan.cap < plan.base:
        raise InputError(
            f"--backoff-cap must be at least the backoff base ({plan.base:g} s), got {plan.cap:g}"
        )
