"""Power loss and kills on the TV, with real processes: a device process (its brain and
sync client, forked from a zygote) syncing with a real constellation is SIGKILLed — at
each step of a sync, just before seeded numbers of its SQLite writes and fsyncs, and from
outside after seeded delays (the delays are seeded, the point of the sync each kill lands
on is not: it varies with the machine's speed from run to run) — and after the kills
inside SQLite's writes the files also
lose everything not fsynced, as after a power cut (``_power_loss``). Reopened, the brain's
outbox, batch in flight and cursors agree with one another and with the server; synced
again, it leaves each pattern version on the server exactly once and nothing it
queued missing, and holds what a clean sync holds.

``OMEGA_POWER_LOSS_POINTS`` sets how many I/O kill points are drawn (``all``: every one).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from _power_loss import Job, Zygote, check_layout, lose_power
from _sync_world import (
    Server,
    copy_device,
    crowd_release,
    device_outbox,
    device_template,
    open_brain,
    pending_upserts,
    start_server,
)

from omega.brain import Brain
from omega.clock import ManualClock
from omega.protocol import codec
from omega.protocol.messages import Pattern, PushRequest
from omega.sync import HttpTransport, SyncClient

PAGE = 350  # bytes: one release version per pull page (three pages)
STEPS = ["batch-recorded", "reply-received", "acked", "page-applied"]
SEED = 15
IO_POINTS = os.environ.get("OMEGA_POWER_LOSS_POINTS", "12")
OUTSIDE_KILLS = 4
CREDENTIALS = ("sync.viewer_id", "sync.access_token", "sync.refresh_token")


def test_the_power_cut_loses_exactly_what_was_not_fsynced(tmp_path: Path) -> None:
    """The model itself: a commit with synchronous=FULL survives, the NORMAL ones after
    it (in the WAL, not yet fsynced) survive the kill alone but not the power cut."""
    script = textwrap.dedent(
        f"""
        import os, signal, sqlite3, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from _power_loss import PowerLossVfs
        PowerLossVfs(Path({str(tmp_path / "journal")!r})).install()
        db = sqlite3.connect({str(tmp_path / "x.db")!r}, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (x INTEGER)")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("INSERT INTO t VALUES (1)")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("INSERT INTO t VALUES (2)")
        db.execute("INSERT INTO t VALUES (3)")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    killed = tmp_path / "killed"
    killed.mkdir()
    for name in ("x.db", "x.db-wal"):
        shutil.copy(tmp_path / name, killed / name)
    assert _rows(killed / "x.db") == [1, 2, 3]  # a kill loses nothing committed

    undone = lose_power(tmp_path / "journal")
    assert undone["x.db-wal"] > 0
    assert _rows(tmp_path / "x.db") == [1]  # a power cut loses the commits not fsynced


def test_a_sqlite_whose_vfs_layout_differs_is_refused_in_a_sentence() -> None:
    """The ctypes VFS fits only the structures it describes: anything else stops the test
    with a sentence, never a crash or a write through the wrong function pointer."""
    check_layout(sqlite3.sqlite_version, 3, 3)  # this machine's SQLite fits
    for library, vfs, io in [("3.7.16", 3, 3), (sqlite3.sqlite_version, 4, None)]:
        with pytest.raises(RuntimeError, match=f"SQLite {library} has a VFS of version {vfs}"):
            check_layout(library, vfs, io)
    with pytest.raises(RuntimeError, match="and file methods of version 4: compare"):
        check_layout(sqlite3.sqlite_version, 3, 4)


def _rows(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")]


# -- the device ------------------------------------------------------------------------
@dataclass
class World:
    server: Server
    template: Path
    now: float
    queued: set[str]  # what every copy of the template has to push
    held: set[str]  # the released patterns a clean sync leaves on the device
    ops: int  # writes, truncates and fsyncs of a clean device process
    seconds: float  # how long the clean device process ran
    zygote: Zygote
    tmp: Path
    points: int = 0

    def job(self, **kill: object) -> tuple[Job, Path]:
        self.points += 1
        name = f"tv{self.points}"
        directory = self.tmp / name
        shutil.copytree(self.template, directory)
        job = Job(
            directory=str(directory),
            url=self.server.base_url,
            journal=str(self.tmp / f"{name}.journal"),
            report=str(self.tmp / f"{name}.ops"),
            now=self.now,
            page=PAGE,
            **kill,  # type: ignore[arg-type]
        )
        return job, directory


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("power")
    server = start_server(tmp / "constellation", OMEGA_MIN_PULL_BYTES="128")
    zygote = Zygote(tmp / "devices.log")
    try:
        server.publish_codebook()
        crowd_release(server, [[0, 1, 2], [3, 4, 5], [6, 7]])
        template = device_template(server, tmp / "template", [5, 6, 7])
        probe, clock = copy_device(template, tmp / "probe")
        queued = device_outbox(probe)
        probe.close()
        world = World(server, template, clock.now(), queued, set(), 0, 0.0, zygote, tmp)
        job, directory = world.job()
        started = time.monotonic()
        assert zygote.run(job) == 0, zygote.log.read_text()[-3000:]
        world.seconds = time.monotonic() - started
        world.ops = int(Path(job.report).read_text())
        assert world.ops > 0  # the brain's files went through the VFS
        clean = open_brain(directory, ManualClock(world.now))
        world.held = {p.id for p in clean.sync.collective()[0]}
        assert clean.sync.outbox_size() == 0 and world.held
        clean.close()
        yield world
    finally:
        zygote.close()
        server.stop()


def _io_points(world: World) -> list[int]:
    every = list(range(1, world.ops + 1))
    if IO_POINTS == "all":
        return every
    return sorted(random.Random(SEED).sample(every, min(int(IO_POINTS), len(every))))


@pytest.mark.parametrize("step", STEPS)
def test_power_cut_at_each_step_of_a_sync(world: World, step: str) -> None:
    before = _viewers(world)
    job, directory = world.job(kill_step=step)
    assert world.zygote.run(job) == -signal.SIGKILL
    lose_power(Path(job.journal))
    _recover(world, directory, f"power cut at {step}", before)


def test_power_cut_inside_sqlite_writes_at_seeded_points(world: World) -> None:
    points = _io_points(world)
    lost = 0
    killed = 0
    for n in points:
        before = _viewers(world)
        job, directory = world.job(kill_at=n)
        code = world.zygote.run(job)
        if code == 0:  # this run did fewer writes than the clean one (a report's size)
            assert int(Path(job.report).read_text()) < n, f"I/O {n}: not killed"
        else:
            assert code == -signal.SIGKILL, f"I/O {n} of {world.ops}"
            killed += 1
        lost += sum(lose_power(Path(job.journal)).values())
        _recover(world, directory, f"power cut before I/O {n} of {world.ops}", before)
    assert killed >= len(points) - 1
    assert lost > 0  # some kill points had writes the cut took away


def test_killed_from_outside_after_seeded_delays(world: World) -> None:
    """Where each kill lands varies from run to run (the delays are seeded, the machine's
    speed is not); whatever it hits, the device recovers."""
    rng = random.Random(SEED)
    killed = 0
    for _ in range(OUTSIDE_KILLS):
        delay = rng.uniform(0, world.seconds)
        before = _viewers(world)
        job, directory = world.job(kill_after=delay)
        code = world.zygote.run(job)
        assert code in (0, -signal.SIGKILL)  # it may have finished first
        killed += code == -signal.SIGKILL
        _recover(world, directory, f"SIGKILL after {delay:.3f} s", before)
    assert killed > 0


# -- after the crash ---------------------------------------------------------------------
def _recover(world: World, directory: Path, point: str, before: set[str]) -> None:
    """Reopen the brain, check it, sync until nothing is left, check the server (and
    every viewer registered since ``before``: the device may have registered twice)."""
    brain = open_brain(directory, ManualClock(world.now))
    try:
        _check_consistent(brain, world, point)
        _drain(brain, world.server)
        _check_synced(brain, world, point)
        assert _duplicates(world, since=before) == {}, point
    finally:
        brain.close()


def _check_consistent(brain: Brain, world: World, point: str) -> None:
    assert brain.store.integrity_ok(), point
    with brain.store.lock:
        inflight = brain.store.conn.execute("SELECT batch_id, payload FROM inflight").fetchall()
        outbox = brain.store.conn.execute("SELECT pattern_id, batch_id FROM outbox").fetchall()
    credentials = [brain.sync.cursor(name) for name in CREDENTIALS]
    assert all(credentials) or not any(credentials), f"{point}: half a credential set"
    viewer = credentials[0]
    assert len(inflight) <= 1, point
    batches = {b: codec.decode(bytes(p), expect=PushRequest) for b, p in inflight}
    for batch in batches.values():
        assert batch.viewer_id == viewer, f"{point}: a batch of another viewer in flight"
    for pattern_id, batch_id in outbox:
        if batch_id is not None:  # an entry in a batch: that batch is in flight, with it
            carried = {p.id for p in (*batches[batch_id].added, *batches[batch_id].updated)}
            assert pattern_id in carried | set(batches[batch_id].removed), point
    # Nothing queued is gone: still in the outbox, or on the server for this viewer.
    stored = {pid for pid, _ in pending_upserts(_db(world), viewer)} if viewer else set()
    assert world.queued <= {pid for pid, _ in outbox} | stored, point
    _check_cursor(brain, world, point)


def _check_cursor(brain: Brain, world: World, point: str) -> None:
    """The release cursor never runs ahead of the data: what the device holds lies within
    what the server released up to it (a page may carry a version's top share only)."""
    cursor = brain.sync.release_version()
    with sqlite3.connect(_db(world)) as conn:
        released = {
            r[0]
            for r in conn.execute(
                "SELECT pattern_id FROM released WHERE removed = 0 AND version <= ?", (cursor,)
            )
        }
    held = {p.id for p in brain.sync.collective()[0]}
    assert held <= released and bool(held) == bool(cursor), point


def _drain(brain: Brain, server: Server) -> None:
    async def sync() -> None:
        async with HttpTransport(server.base_url) as transport:
            client = SyncClient(brain, transport, max_pull_bytes=PAGE)
            for _ in range(10):
                result = await client.sync()
                if result.outbox_remaining == 0 and not result.more:
                    return
            raise AssertionError("the device did not drain in 10 syncs")

    asyncio.run(sync())


def _check_synced(brain: Brain, world: World, point: str) -> None:
    viewer = brain.sync.cursor(CREDENTIALS[0])
    upserts = pending_upserts(_db(world), viewer)
    assert {pid for pid, _ in upserts} == world.queued, f"{point}: lost on the way"
    assert set(upserts.values()) == {1}, f"{point}: pushed twice: {upserts}"
    assert brain.sync.outbox_size() == 0 and brain.sync.inflight() is None, point
    assert brain.sync.release_version() == world.server.stats()["version"], point
    assert {p.id for p in brain.sync.collective()[0]} == world.held, point


def _viewers(world: World) -> set[str]:
    with sqlite3.connect(_db(world)) as conn:
        return {r[0] for r in conn.execute("SELECT viewer_id FROM viewers")}


def _duplicates(world: World, *, since: set[str]) -> dict[tuple[str, str, int], int]:
    """Pattern versions queued more than once for a viewer not in ``since``."""
    with sqlite3.connect(_db(world)) as conn:
        rows = conn.execute("SELECT viewer_id, body FROM pending WHERE op = 'upsert'").fetchall()
    counts: Counter[tuple[str, str, int]] = Counter()
    for viewer, body in rows:
        if viewer in since:
            continue
        pattern = msgspec.msgpack.decode(body, type=Pattern)
        counts[(viewer, pattern.id, pattern.version)] += 1
    return {key: n for key, n in counts.items() if n > 1}


def _db(world: World) -> Path:
    return world.server.data_dir / "constellation.db"
