"""Crashes on either side, with real processes: the constellation is SIGKILLed after
committing a push and before answering; the TV's process is SIGKILLed at each step of a
sync. Every time the database is intact, nothing unacknowledged leaves the outbox, the
cursor is never ahead of the data, and the next sync pushes each pattern version exactly
once. (The same under a fleet: ``test_sync_server_kill``; power cuts on the TV:
``test_sync_power_loss``.)"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from _sync_world import (
    Server,
    device_outbox,
    open_brain,
    pending_upserts,
    sigkill_when_stopped,
    start_server,
    watch,
)

from omega.brain import Brain
from omega.clock import ManualClock
from omega.errors import TransportError
from omega.sync import HttpTransport, RetryPolicy, SyncClient, SyncResult


async def _no_sleep(_: float) -> None:
    return None


async def _sync(brain: Brain, url: str, *, attempts: int = 3) -> SyncResult:
    async with HttpTransport(url) as transport:
        client = SyncClient(brain, transport, retry=RetryPolicy(attempts=attempts, sleep=_no_sleep))
        await client.fetch_codebook()
        return await client.sync()


def test_server_sigkilled_after_commit_before_answer_applies_the_retry_once(tmp_path: Path) -> None:
    clock = ManualClock()
    tv = open_brain(tmp_path / "tv", clock)
    data_dir = tmp_path / "constellation"
    healthy = start_server(data_dir)
    try:
        healthy.publish_codebook()
        asyncio.run(_sync(tv, healthy.base_url))  # register, adopt the codebook
    finally:
        healthy.stop()
    watch(tv, clock, [0, 1, 2])

    # The server stops itself right after the commit; the test SIGKILLs it there.
    crashing = start_server(data_dir, OMEGA_FAILPOINTS='["stop-after-ingest"]')
    try:
        killer = sigkill_when_stopped(crashing.process)
        with pytest.raises(TransportError):
            asyncio.run(_sync(tv, crashing.base_url))  # killed; the retries find no one
        killer.join()
        assert crashing.process.wait(timeout=30) == -signal.SIGKILL
    finally:
        crashing.stop()
    inflight = tv.sync.inflight()
    assert inflight is not None
    in_batch = device_outbox(tv)
    assert in_batch  # nothing acknowledged has left

    restarted = start_server(data_dir)
    try:
        viewer = tv.sync.cursor("sync.viewer_id", "0")
        db = data_dir / "constellation.db"
        committed = pending_upserts(db, viewer)
        assert committed  # the crashed server had committed the push
        result = asyncio.run(_sync(tv, restarted.base_url))
        assert result.resent and result.batch_id == inflight.batch_id
        assert result.accepted == result.pushed
        assert pending_upserts(db, viewer) == committed  # the retry changed nothing there
        assert set(committed.values()) == {1}
        assert tv.sync.outbox_size() == 0
    finally:
        restarted.stop()
    tv.close()


_CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from _sync_world import open_brain
    from omega.clock import ManualClock
    from omega.sync import HttpTransport, SyncClient

    target = {target!r}

    def step(name):
        if name == target:
            os.kill(os.getpid(), signal.SIGKILL)

    async def main():
        brain = open_brain(Path({tv!r}), ManualClock({now!r}))
        async with HttpTransport({url!r}) as transport:
            await SyncClient(brain, transport, max_pull_bytes={page}, on_step=step).sync()
        brain.close()

    asyncio.run(main())
    """
)

STEPS = ["batch-recorded", "reply-received", "acked", "page-applied"]
PAGE = 400  # bytes: one release version per pull page


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with two releases, each about one small pull page."""
    base = tmp_path_factory.mktemp("crowd")
    server = start_server(base / "constellation", OMEGA_MIN_PULL_BYTES="128")
    server.publish_codebook()
    clock = ManualClock()
    tvs = [open_brain(base / f"tv{n}", ManualClock(clock.now())) for n in range(3)]
    for cells in ([0, 1, 2, 3], [4, 5, 6, 7]):
        for tv in tvs:
            watch(tv, tv.clock, cells)  # type: ignore[arg-type]
            asyncio.run(_sync(tv, server.base_url))
        server.run_round()
    for tv in tvs:
        tv.close()
    assert server.stats()["version"] == 2
    probe = open_brain(base / "probe", ManualClock())

    async def pull_small() -> SyncResult:
        async with HttpTransport(server.base_url) as transport:
            return await SyncClient(probe, transport, max_pull_bytes=PAGE).sync()

    assert asyncio.run(pull_small()).pages > 1  # so a kill can fall between pages
    probe.close()
    yield server
    server.stop()


@pytest.mark.parametrize("target", STEPS)
def test_client_killed_mid_sync_loses_and_duplicates_nothing(
    released: Server, tmp_path: Path, target: str
) -> None:
    clock = ManualClock()
    tv_dir = tmp_path / "tv"
    tv = open_brain(tv_dir, clock)
    asyncio.run(_sync(tv, released.base_url))  # register, adopt the codebook, pull
    _rewind(tv)
    watch(tv, clock, [5, 6, 7])
    tv.flush()
    queued = device_outbox(tv)
    assert queued
    tv.close()

    script = _CHILD.format(
        tests=str(Path(__file__).parent),
        target=target,
        tv=str(tv_dir),
        now=clock.now(),
        url=released.base_url,
        page=PAGE,
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]

    tv = open_brain(tv_dir, clock)
    assert tv.store.integrity_ok()
    viewer = tv.sync.cursor("sync.viewer_id", "0")
    acked = target in ("acked", "page-applied")
    assert (device_outbox(tv) == set()) if acked else (device_outbox(tv) == queued)
    assert (tv.sync.inflight() is None) == acked
    _assert_cursor_backed_by_data(tv, released)

    result = asyncio.run(_sync(tv, released.base_url))
    assert result.resent == (not acked)
    assert tv.sync.outbox_size() == 0
    upserts = pending_upserts(released.data_dir / "constellation.db", viewer)
    assert set(upserts.values()) == {1}
    assert {pid for pid, _ in upserts} == queued
    _assert_cursor_backed_by_data(tv, released)
    assert int(tv.sync.cursor("release_version", "0")) == released.stats()["version"]
    tv.close()


def _rewind(tv: Brain) -> None:
    """Forget the pulled release so the killed sync has pages to pull."""
    tv.sync.forget_release()


def _assert_cursor_backed_by_data(tv: Brain, server: Server) -> None:
    """Every pattern the server released up to the device's cursor is in its collective
    tier (a page's patterns commit with the cursor that covers them)."""
    import sqlite3

    cursor = int(tv.sync.cursor("release_version", "0"))
    with sqlite3.connect(server.data_dir / "constellation.db") as conn:
        released = {
            r[0]
            for r in conn.execute(
                "SELECT pattern_id FROM released WHERE removed = 0 AND version <= ?", (cursor,)
            )
        }
    with tv.store.lock:
        held = {r[0] for r in tv.store.conn.execute("SELECT id FROM collective")}
    if cursor:
        # With a small budget one version may be cut to its top share (see fit_pull), so
        # the device holds a non-empty part of what its cursor covers, and nothing more.
        assert held and held <= released
    else:
        assert held == set()
    assert os.path.exists(tv.store.path)
