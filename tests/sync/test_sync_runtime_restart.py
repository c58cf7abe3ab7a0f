"""A device runtime on its own thread, syncing with a real constellation (uvicorn in a child
process on loopback) that is SIGKILLed from outside and started again on the same port
and data directory: the runtime recovers with no help, and the server's storage holds
every shared pattern exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from _sync_world import open_brain, pending_upserts, start_server, watch

from omega.clock import ManualClock, SystemClock
from omega.sync import DeviceRuntime, SyncSchedule
from omega.sync.cursors import load_credentials


def _until(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait for ``condition`` (a deadline against a hung run, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def test_a_runtime_rides_out_a_sigkilled_server_and_nothing_is_lost_or_doubled(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "constellation"
    pace = {"OMEGA_SYNC_INTERVAL": "0.2"}  # the server's next_sync_after
    server = start_server(data_dir, **pace)
    server.publish_codebook()
    port = urlsplit(server.base_url).port
    assert port is not None
    clock = ManualClock()
    tv = open_brain(tmp_path / "tv", clock)
    watch(tv, clock, [0, 1, 2])
    # The first sync is the test's own (sync_now): a scheduled one could empty the outbox first.
    schedule = SyncSchedule(interval=0.3, base=0.05, cap=0.5, first_delay=3600)
    runtime = DeviceRuntime(tv, server.base_url, schedule=schedule, tick=0.5, clock=SystemClock())
    restarted = None
    try:
        runtime.start()
        first = runtime.sync_now().result(timeout=60)
        assert first.pushed > 0 and first.accepted == first.pushed

        server.process.kill()  # SIGKILL, from outside
        server.process.wait(timeout=30)
        watch(tv, clock, [3, 4, 5])  # the household watches on
        _until("three failures in a row", lambda: runtime.status().consecutive_failures >= 3)
        assert runtime.status().state in ("backoff", "syncing")

        restarted = start_server(data_dir, port=port, **pace)
        back = time.time()
        _until(
            "a sync after the restart that empties the outbox",
            lambda: (
                (runtime.status().last_success_at or 0) > back
                and tv.sync.outbox_size() == 0
                and tv.sync.inflight() is None
            ),
        )
    finally:
        final = runtime.stop(timeout=60)
        if restarted is not None:
            restarted.stop()
        server.stop()
    assert final.state == "stopped" and final.failures >= 3 and final.syncs >= 2
    creds = load_credentials(tv)
    assert creds is not None
    stored = pending_upserts(data_dir / "constellation.db", creds.viewer_id)
    assert set(stored.values()) == {1}  # nothing twice
    shared = {(s.id, s.version) for s in tv.learner.bank if s.shared_rate >= 0}
    assert shared <= set(stored)  # nothing lost, what was watched during the outage included
    assert len(shared) > first.pushed
    tv.close()
