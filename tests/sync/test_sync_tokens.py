"""Tokens run out mid-sync (the server's clock is moved by hand): exactly one refresh,
single-flight across concurrent calls, nothing lost; a refused refresh is a clear
AuthError. Overload answers are honoured (Retry-After)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from _sync_world import inprocess_settings, open_brain, pending_upserts, publish_codebook_via, watch

from omega.clock import ManualClock
from omega.constellation import create_app
from omega.errors import AuthError, ServerError
from omega.sync import AsgiTransport, RetryPolicy, SyncClient
from omega.sync.cursors import load_credentials, save_credentials

TTL = 60


def _app(tmp_path: Path, clock: ManualClock, **settings: object):  # type: ignore[no-untyped-def]
    values = {"access_token_ttl": TTL, "jwt_leeway": 0, **settings}
    return create_app(inprocess_settings(tmp_path / "server", **values), clock=clock)


def test_token_expiring_mid_sync_costs_one_refresh_and_loses_nothing(tmp_path: Path) -> None:
    clock = ManualClock()
    app = _app(tmp_path, clock)
    tv = open_brain(tmp_path / "tv", clock)

    async def scenario() -> None:
        async with AsgiTransport(app) as transport:
            await publish_codebook_via(transport)

            expired: list[str] = []

            def expire(step: str) -> None:
                # Once: the first batch is recorded and the token dies now. (A later sync
                # that records a batch must not age the tokens the refresh just issued.)
                if step == "batch-recorded" and not expired:
                    expired.append(step)
                    clock.advance(2 * TTL)

            client = SyncClient(tv, transport, on_step=expire)
            await client.fetch_codebook()
            first = load_credentials(tv)
            watch(tv, clock, [0, 1, 2])
            result = await client.sync()
            assert result.refreshes == 1
            assert result.accepted == result.pushed > 0
            assert tv.sync.outbox_size() == 0 and tv.sync.inflight() is None
            upserts = pending_upserts(tmp_path / "server" / "constellation.db", result.viewer_id)
            assert len(upserts) == result.pushed and set(upserts.values()) == {1}
            # The rotated pair is what the brain keeps, durably.
            kept = load_credentials(tv)
            assert kept is not None and first is not None
            assert kept.viewer_id == first.viewer_id
            assert kept.refresh_token != first.refresh_token

            # Two calls at once, both refused: one refresh serves them both.
            clock.advance(2 * TTL)
            both = await asyncio.gather(client.sync(), client.fetch_codebook())
            assert both[0].refreshes == 1
            assert client.refreshes == 2

    asyncio.run(scenario())
    tv.close()


def test_a_refused_refresh_is_a_clear_auth_error_and_keeps_the_batch(tmp_path: Path) -> None:
    clock = ManualClock()
    app = _app(tmp_path, clock)
    tv = open_brain(tmp_path / "tv", clock)

    async def scenario() -> None:
        async with AsgiTransport(app) as transport:
            await publish_codebook_via(transport)
            client = SyncClient(tv, transport)
            await client.fetch_codebook()
            creds = load_credentials(tv)
            assert creds is not None
            # The refresh token was already spent (say, by a clone of this TV).
            await client._session.refresh(creds.access_token)
            save_credentials(tv, creds)
            watch(tv, clock, [0, 1, 2])
            clock.advance(2 * TTL)
            with pytest.raises(AuthError, match="register again"):
                await SyncClient(tv, transport).sync()
            assert tv.sync.inflight() is not None  # nothing lost: it waits for credentials

    asyncio.run(scenario())
    tv.close()


def test_rate_limited_sync_waits_at_least_retry_after_then_reports_it(tmp_path: Path) -> None:
    clock = ManualClock()
    app = _app(tmp_path, clock, rate_limit=2, rate_window=30)
    tv = open_brain(tmp_path / "tv", clock)
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    async def scenario() -> None:
        async with AsgiTransport(app) as transport:
            await publish_codebook_via(transport)
            retry = RetryPolicy(attempts=3, base=0.1, cap=1.0, max_retry_after=60, sleep=no_sleep)
            client = SyncClient(tv, transport, retry=retry)
            await client.fetch_codebook()  # request 1 of 2
            await client.sync()  # request 2 of 2
            with pytest.raises(ServerError) as caught:
                await client.sync()
            assert caught.value.status == 429
            assert caught.value.retry_after is not None and caught.value.retry_after > 0
            assert len(waits) == 2
            assert all(w >= 1 for w in waits)  # never sooner than the server asked

            patient = RetryPolicy(attempts=3, max_retry_after=0.5, sleep=no_sleep)
            waits.clear()
            with pytest.raises(ServerError):
                await SyncClient(tv, transport, retry=patient).sync()
            assert waits == []  # a long Retry-After goes back to the caller's scheduler

    asyncio.run(scenario())
    tv.close()


def test_concurrent_first_calls_register_the_device_once(tmp_path: Path) -> None:
    clock = ManualClock()
    app = _app(tmp_path, clock)
    tv = open_brain(tmp_path / "tv", clock)

    async def scenario() -> None:
        async with AsgiTransport(app) as transport:
            await publish_codebook_via(transport)
            client = SyncClient(tv, transport)
            await asyncio.gather(client.fetch_codebook(), client.sync(), client.credentials())
            assert app.state.runtime.storage.stats().viewers == 1

    asyncio.run(scenario())
    tv.close()


def test_a_batch_recorded_in_an_old_frame_goes_out_again_in_a_new_one(tmp_path: Path) -> None:
    """A TV upgraded with a push in flight recorded in a frame of an older protocol version
    (no checksum): the frame is not resent — the server would refuse it for ever — its
    changes rejoin the outbox and leave in a new batch."""
    from omega.brain import InflightBatch
    from omega.sync import build_push

    clock = ManualClock()
    app = _app(tmp_path, clock)
    tv = open_brain(tmp_path / "tv", clock)

    async def scenario() -> None:
        async with AsgiTransport(app) as transport:
            await publish_codebook_via(transport)
            client = SyncClient(tv, transport)
            await client.fetch_codebook()
            watch(tv, clock, [0, 1, 2])
            tv.flush()
            pending = tv.sync.pending(64)
            plan = build_push(pending, viewer_id="v", codebook_id="c", batch_id="old")
            assert plan is not None
            old_frame = bytes((1, plan.payload[1])) + plan.payload[6:]  # version 1's layout
            tv.sync.begin_batch(InflightBatch("old", old_frame), plan.entries)
            result = await client.sync()
            assert not result.resent and result.batch_id != "old"
            assert result.accepted == result.pushed == len(plan.entries)
            assert tv.sync.outbox_size() == 0 and tv.sync.inflight() is None

    asyncio.run(scenario())
    tv.close()
