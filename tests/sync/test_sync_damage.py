"""Damaged answers and lost ones, against the real app in this process: nothing from a bad
answer is applied, the batch stays in flight, the cursor stays, and the next sync works."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from _sync_world import (
    Tamper,
    inprocess_settings,
    open_brain,
    pending_upserts,
    publish_codebook_via,
    watch,
)

from omega.clock import ManualClock
from omega.constellation import create_app
from omega.errors import RemoteProtocolError
from omega.sync import AsgiTransport, RetryPolicy, SyncClient


@pytest.mark.parametrize("mode", ["truncate", "flip", "garbage"])
def test_a_damaged_answer_applies_nothing_and_the_next_sync_succeeds(
    tmp_path: Path, mode: str
) -> None:
    clock = ManualClock()
    app = create_app(inprocess_settings(tmp_path / "server"))
    tamper = Tamper(app)
    tv = open_brain(tmp_path / "tv", clock)

    async def scenario() -> None:
        async with AsgiTransport(tamper, lifespan_app=app) as transport:
            await publish_codebook_via(transport)
            client = SyncClient(tv, transport)
            await client.fetch_codebook()
            watch(tv, clock, [0, 1, 2])
            tamper.arm(mode)
            with pytest.raises(RemoteProtocolError):
                await client.sync()
            inflight = tv.sync.inflight()
            assert inflight is not None  # the server committed it; we never saw the ack
            assert tv.sync.cursor("release_version", "none") == "none"
            assert tv.sync.cursor("last_sync", "none") == "none"
            assert tv.sync.outbox_size() > 0

            result = await client.sync()
            assert result.resent
            assert result.batch_id == inflight.batch_id
            assert result.accepted == result.pushed > 0
            assert tv.sync.inflight() is None
            assert tv.sync.outbox_size() == 0
            assert tv.sync.cursor("release_version", "none") == str(result.version)
            upserts = pending_upserts(tmp_path / "server" / "constellation.db", result.viewer_id)
            assert len(upserts) == result.pushed
            assert set(upserts.values()) == {1}  # each pattern version exactly once

    asyncio.run(scenario())
    assert tamper.tampered == 1
    assert tv.store.integrity_ok()
    tv.close()


class Lossy:
    """A transport that really sends each request, then loses the next ``n`` answers."""

    def __init__(self, inner: AsgiTransport) -> None:
        self.inner = inner
        self.to_lose = 0
        self.lost = 0

    async def request(self, method, path, *, body, headers):  # type: ignore[no-untyped-def]
        from omega.errors import TransportError

        answer = await self.inner.request(method, path, body=body, headers=headers)
        if self.to_lose and path == "/api/omega/sync":
            self.to_lose -= 1
            self.lost += 1
            raise TransportError("connection reset before the answer arrived")
        return answer

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_lost_answers_are_retried_with_backoff_and_applied_once(tmp_path: Path) -> None:
    clock = ManualClock()
    app = create_app(inprocess_settings(tmp_path / "server"))
    tv = open_brain(tmp_path / "tv", clock)
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    async def scenario() -> None:
        async with AsgiTransport(app) as inner:
            await publish_codebook_via(inner)
            lossy = Lossy(inner)
            retry = RetryPolicy(attempts=4, base=0.5, cap=4.0, sleep=no_sleep)
            client = SyncClient(tv, lossy, retry=retry)  # type: ignore[arg-type]
            await client.fetch_codebook()
            watch(tv, clock, [3, 4, 5])
            lossy.to_lose = 3  # three answers lost: the fourth try gets through
            result = await client.sync()
            assert lossy.lost == 3
            assert not result.resent  # resent within one sync, by the retry loop
            assert result.accepted == result.pushed > 0
            upserts = pending_upserts(tmp_path / "server" / "constellation.db", result.viewer_id)
            assert len(upserts) == result.pushed and set(upserts.values()) == {1}

    asyncio.run(scenario())
    assert len(waits) == 3
    # Full jitter: each wait is within [0, min(cap, base * 2^n)].
    for n, wait in enumerate(waits):
        assert 0 <= wait <= min(4.0, 0.5 * 2**n)
    tv.close()
