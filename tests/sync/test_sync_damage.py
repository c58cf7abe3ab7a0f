"""Damaged answers, against the real app in this process: nothing from a bad answer is
applied, the batch stays in flight, the cursor stays, and the next sync works. (Answers
lost to a real TCP reset: ``test_sync_resets``.)"""

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
from omega.sync import AsgiTransport, SyncClient


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
