"""A Hypothesis state machine over one TV and the real constellation app (in process):
learn, push with lost answers, crash mid-sync or between syncs (the brain abandoned
without a flush, then reopened), crowd releases, clean syncs.

Invariant, "never lost, never duplicated": the server queued each (pattern, version)
the device produced at most once, and after a clean sync exactly the device's shareable
patterns (same versions) are live for it on the server, its outbox is empty, and its
cursor and collective tier match the server's release.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
from _sync_world import (
    CODEBOOK_ID,
    K,
    inprocess_settings,
    open_brain,
    publish_codebook_via,
    run_round_via,
)
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from omega.brain import Brain
from omega.clock import ManualClock
from omega.constellation import create_app
from omega.errors import TransportError
from omega.protocol import codec
from omega.protocol.messages import Pattern, PushRequest, Registration, RegistrationResponse
from omega.sync import AsgiTransport, RetryPolicy, SyncClient

STEPS = ("batch-recorded", "reply-received", "acked", "page-applied")


class Crash(Exception):
    """The TV's process dies here (the brain is abandoned without a flush)."""


class Lossy:
    """Really sends each request, then loses the next ``to_lose`` /sync answers."""

    def __init__(self, inner: AsgiTransport) -> None:
        self.inner = inner
        self.to_lose = 0

    async def request(self, method: str, path: str, *, body: Any, headers: Any) -> Any:
        answer = await self.inner.request(method, path, body=body, headers=headers)
        if self.to_lose and path == "/api/omega/sync":
            self.to_lose -= 1
            raise TransportError("answer lost (simulated; real resets: test_sync_resets)")
        return answer

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _no_sleep(_: float) -> None:
    return None


class SyncMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="omega-sync-sm-"))
        self.loop = asyncio.new_event_loop()
        self.app = create_app(inprocess_settings(self.tmp / "server"))
        self.inner = AsgiTransport(self.app)
        self.run(self.inner.open())
        self.run(publish_codebook_via(self.inner))
        self.lossy = Lossy(self.inner)
        self.clock = ManualClock()
        self.brain = open_brain(self.tmp / "tv", self.clock)
        self.crash_at: str | None = None
        self.client = self._client()
        self.run(self.client.fetch_codebook())
        self.crowd = [self._register() for _ in range(3)]
        self.seen_seq = 0
        self.queued: Counter[tuple[str, int]] = Counter()

    # -- plumbing ------------------------------------------------------------------------
    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def _client(self) -> SyncClient:
        def step(name: str) -> None:
            if name == self.crash_at:
                self.crash_at = None
                raise Crash(name)

        retry = RetryPolicy(attempts=2, sleep=_no_sleep)
        return SyncClient(self.brain, self.lossy, retry=retry, max_pull_bytes=1 << 20, on_step=step)  # type: ignore[arg-type]

    def _register(self) -> RegistrationResponse:
        answer = self.run(
            self.inner.request(
                "POST",
                "/api/omega/viewers",
                body=codec.encode(Registration()),
                headers={"Content-Type": "application/x-omega"},
            )
        )
        return codec.decode(answer.body, expect=RegistrationResponse)

    def _reopen(self, *, clean: bool) -> None:
        if clean:
            self.brain.close()
        else:
            self.brain.store.close()  # as a killed process: no flush, nothing more written
        self.brain = open_brain(self.tmp / "tv", self.clock)
        self.client = self._client()

    def _drain_server_queue(self) -> None:
        """Count every upsert the server queued for this TV (before a round applies it)."""
        viewer = self.brain.sync.cursor("sync.viewer_id", "")
        with sqlite3.connect(self.tmp / "server" / "constellation.db") as conn:
            rows = conn.execute(
                "SELECT seq, body FROM pending WHERE viewer_id = ? AND op = 'upsert' AND seq > ?",
                (viewer, self.seen_seq),
            ).fetchall()
        for seq, body in rows:
            p = msgspec.msgpack.decode(body, type=Pattern)
            self.queued[(p.id, p.version)] += 1
            self.seen_seq = max(self.seen_seq, seq)

    # -- rules -----------------------------------------------------------------------------
    @rule(
        cells=st.lists(st.integers(0, K - 1), min_size=1, max_size=3),
        fraction=st.sampled_from([0.95, 0.95, 0.1]),
    )
    def learn(self, cells: list[int], fraction: float) -> None:
        for n in range(3):  # each cell three times: enough support to share
            for cell in cells:
                self.brain.track_view(f"c{cell}i{n}", watch_fraction=fraction)
                self.clock.advance(1200)

    @rule(lost=st.integers(1, 3))
    def push_with_lost_answers(self, lost: int) -> None:
        self.lossy.to_lose = lost
        try:
            self.run(self.client.sync())
        except TransportError:
            assert lost >= 2  # two tries: one lost answer is retried away
        self.lossy.to_lose = 0

    @rule(where=st.sampled_from(STEPS))
    def crash_mid_sync(self, where: str) -> None:
        self.crash_at = where
        with contextlib.suppress(Crash):
            self.run(self.client.sync())
        self.crash_at = None
        self._reopen(clean=False)

    @rule()
    def crash_between_syncs(self) -> None:
        self._reopen(clean=False)

    @rule()
    def restart(self) -> None:
        self._reopen(clean=True)

    @rule(cells=st.lists(st.integers(0, K - 1), min_size=1, max_size=3, unique=True))
    def crowd_release(self, cells: list[int]) -> None:
        patterns = [
            Pattern(id=f"crowd-{c}", task="preference", cells=(c,), success_rate=0.9, support=9)
            for c in cells
        ]
        for viewer in self.crowd:
            push = PushRequest(
                viewer_id=viewer.viewer_id,
                batch_id=f"b{self.clock.now()}-{cells}",
                codebook_id=CODEBOOK_ID,
                added=patterns,
            )
            answer = self.run(
                self.inner.request(
                    "POST",
                    "/api/omega/patterns",
                    body=codec.encode(push),
                    headers={
                        "Content-Type": "application/x-omega",
                        "Authorization": f"Bearer {viewer.access_token}",
                    },
                )
            )
            assert answer.status == 200, answer.body
        self.clock.advance(60)
        self._drain_server_queue()
        self.run(run_round_via(self.inner))

    @rule()
    def clean_sync(self) -> None:
        for _ in range(20):
            result = self.run(self.client.sync())
            assert result.rejected == 0
            if result.outbox_remaining == 0 and not result.more:
                break
        self._drain_server_queue()
        self._check_converged()

    # -- invariants ------------------------------------------------------------------------
    @invariant()
    def never_duplicated(self) -> None:
        self._drain_server_queue()
        assert all(n == 1 for n in self.queued.values()), self.queued

    @invariant()
    def cursor_never_ahead(self) -> None:
        server_version = self.app.state.runtime.storage.stats().version
        assert int(self.brain.sync.cursor("release_version", "0")) <= server_version

    def _check_converged(self) -> None:
        brain: Brain = self.brain
        assert brain.sync.outbox_size() == 0 and brain.sync.inflight() is None
        storage = self.app.state.runtime.storage
        now = self.app.state.runtime.clock.now()  # the server's time, as its rounds use
        storage.apply_pending(worker_id="test", limit=100_000, now=now)
        viewer = brain.sync.cursor("sync.viewer_id", "0")
        live = {
            (lp.pattern.id, lp.pattern.version)
            for lp in storage.live_patterns(codebook_id=CODEBOOK_ID, updated_after=0.0)
            if lp.viewer_id == viewer
        }
        exported = {(p.id, p.version) for p in brain.export_patterns()}
        assert live == exported  # never lost (and nothing stale left behind)
        event(f"converged with {'some' if exported else 'no'} shareable patterns")
        assert exported <= set(self.queued)
        version, released = storage.current_release()
        assert int(brain.sync.cursor("release_version", "0")) == version
        held, _ = brain.sync.collective()
        assert {p.id for p in held} == {p.id for p in released}
        event(f"converged with {'a' if released else 'no'} crowd release")
        assert brain.store.integrity_ok()

    def teardown(self) -> None:
        try:
            self.brain.close()
        finally:
            self.run(self.inner.aclose())
            self.loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


SyncMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("OMEGA_SYNC_SM_EXAMPLES", "12")),
    stateful_step_count=14,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_never_lost_never_duplicated = SyncMachine.TestCase
