"""One suite, every door: the sync behaviour a TV relies on, run over HTTP/1.1, gRPC and
HTTP/3 against one live constellation (``_doors.live_doors``) — a brain syncing end to
end, a retried push applied once, pulls paged under the byte budget, the refusals
(401, 403, 413, 429) answered alike, damaged answers applying nothing, and a token
expiring mid-sync costing one refresh and losing nothing.

Each test is written against the ``Transport`` interface only; the door is a parameter.
(Each door's own wire — status codes, metadata, 0-RTT, migration — is tested in
``test_sync_grpc``, ``test_sync_http3`` and the constellation's door tests.)
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest
from _doors import (
    ADMIN,
    DOORS,
    bearer,
    contextual_patterns,
    crowd_releases,
    live_doors,
    register,
)
from _sync_world import CODEBOOK_ID, open_brain, pending_upserts, watch

from omega.clock import ManualClock
from omega.errors import RemoteProtocolError
from omega.protocol import codec
from omega.protocol.messages import (
    PullRequest,
    PullResponse,
    PushAck,
    PushRequest,
    SyncRequest,
    SyncResponse,
)
from omega.sync import HttpTransport, SyncClient
from omega.sync.cursors import load_credentials

pytestmark = pytest.mark.parametrize("door", DOORS)

TTL = 60


def test_a_brain_syncs_end_to_end(tmp_path: Path, door: str) -> None:
    clock = ManualClock()
    tv = open_brain(tmp_path / "tv", clock)

    async def scenario() -> None:
        async with live_doors(tmp_path / "server") as doors, doors.transport(door) as transport:
            client = SyncClient(tv, transport)
            assert await client.fetch_codebook()  # registers, pins the keys, adopts
            watch(tv, clock, [0, 1, 2])
            first = await client.sync()
            assert first.accepted == first.pushed > 0 and first.rejected == 0
            assert tv.sync.outbox_size() == 0 and tv.sync.inflight() is None
            version = await crowd_releases(doors, [range(3, 5)])
            second = await client.sync()
            assert second.version == version == tv.sync.release_version()
            assert second.pulled > 0

    asyncio.run(scenario())
    tv.close()


def test_a_retried_push_is_applied_once(tmp_path: Path, door: str) -> None:
    async def scenario() -> None:
        async with live_doors(tmp_path / "server") as doors, doors.transport(door) as transport:
            viewer = await register(transport)
            push = PushRequest(
                viewer_id=viewer.viewer_id,
                batch_id=uuid.uuid4().hex,
                codebook_id=CODEBOOK_ID,
                added=contextual_patterns(range(2), prefix="retry"),
            )
            acks = []
            for _ in range(2):
                answer = await transport.request(
                    "POST", "/api/omega/patterns", body=codec.encode(push), headers=bearer(viewer)
                )
                assert answer.status == 200, answer.body
                acks.append(codec.decode(answer.body, expect=PushAck))
            assert acks[0] == acks[1] and len(acks[0].accepted) == 24
            upserts = pending_upserts(doors.db_path, viewer.viewer_id)
            assert len(upserts) == 24 and set(upserts.values()) == {1}

    asyncio.run(scenario())


def test_pulls_page_under_the_byte_budget(tmp_path: Path, door: str) -> None:
    budget = 1024  # the server's floor

    async def scenario() -> None:
        async with live_doors(tmp_path / "server") as doors, doors.transport(door) as transport:
            # Eight versions of four patterns: each fits a page, all of them do not (a
            # version over the budget alone is cut to its top share: test_distribute).
            rounds = [range(cell, cell + 1) for cell in range(8)]
            version = await crowd_releases(doors, rounds, days=("any",))
            viewer = await register(transport)
            since, pages, seen = 0, 0, set()
            while True:
                answer = await transport.request(
                    "GET",
                    f"/api/omega/patterns?since={since}&max_bytes={budget}",
                    body=None,
                    headers={**bearer(viewer), "Accept": "application/x-omega"},
                )
                assert answer.status == 200, answer.body
                assert len(answer.body) <= budget  # the sealed frame, as it travels
                page = codec.decode(answer.body, expect=PullResponse)
                seen |= {p.id for p in page.patterns}
                pages, since = pages + 1, page.version
                if not page.more:
                    break
            assert pages >= 3 and since == version
            whole = await transport.request(
                "GET",
                "/api/omega/patterns?since=0&max_bytes=65536",
                body=None,
                headers={**bearer(viewer), "Accept": "application/x-omega"},
            )
            everything = codec.decode(whole.body, expect=PullResponse)
            assert not everything.more and seen == {p.id for p in everything.patterns}

    asyncio.run(scenario())


def test_a_sync_answer_with_an_ack_and_an_endorsement_stays_within_the_budget(
    tmp_path: Path, door: str
) -> None:
    """The budget is the sealed ``/sync`` frame's: its pull is fitted with room for the
    push's ack and for a seal that endorses a rotated key to a device that trusts only
    the old one."""
    budget = 1024

    async def scenario() -> None:
        async with live_doors(tmp_path / "server") as doors, doors.transport(door) as transport:
            await crowd_releases(doors, [range(cell, cell + 1) for cell in range(8)], days=("any",))
            viewer = await register(transport)
            (old_kid,) = viewer.release_keys
            async with HttpTransport(doors.http_url) as http:
                rotated = await http.request(
                    "POST", "/api/omega/release-keys/rotate", body=None, headers=ADMIN
                )
                assert rotated.status in (200, 201), rotated.body
            push = PushRequest(
                viewer_id=viewer.viewer_id,
                batch_id=uuid.uuid4().hex,
                codebook_id=CODEBOOK_ID,
                added=contextual_patterns(range(2), prefix="acked"),
            )
            request = SyncRequest(
                pull=PullRequest(viewer_id=viewer.viewer_id, since_version=0, max_bytes=budget),
                push=push,
                nonce=os.urandom(16),
                release_kids=[old_kid],
            )
            answer = await transport.request(
                "POST", "/api/omega/sync", body=codec.encode(request), headers=bearer(viewer)
            )
            assert answer.status == 200, answer.body
            assert len(answer.body) <= budget
            reply = codec.decode(answer.body, expect=SyncResponse)
            assert reply.ack is not None and len(reply.ack.accepted) == 24
            assert reply.pull.patterns and reply.pull.more  # a page, not nothing

    asyncio.run(scenario())


def test_refusals_are_alike_on_every_door(tmp_path: Path, door: str) -> None:
    async def scenario() -> None:
        async with live_doors(tmp_path / "server") as doors, doors.transport(door) as transport:
            mine, theirs = await register(transport), await register(transport)
            sync = codec.encode(SyncRequest(pull=PullRequest(viewer_id=theirs.viewer_id)))
            path = "/api/omega/sync"
            anonymous = {"Content-Type": bearer(mine)["Content-Type"]}
            forged = {**anonymous, "Authorization": "Bearer not-a-token"}
            for headers, status, slug in [
                (anonymous, 401, b"unauthorized"),
                (forged, 401, b"unauthorized"),
                (bearer(mine), 403, b"not-your-viewer"),
            ]:
                answer = await transport.request("POST", path, body=sync, headers=headers)
                assert answer.status == status, answer.body
                assert slug in answer.body
            oversized = b"\x01" + b"\x00" * (256 * 1024 + 4096)
            answer = await transport.request("POST", path, body=oversized, headers=bearer(mine))
            assert answer.status == 413
            assert not pending_upserts(doors.db_path, mine.viewer_id)

    asyncio.run(scenario())


def test_over_the_rate_limit_is_429_with_retry_after(tmp_path: Path, door: str) -> None:
    async def scenario() -> None:
        async with (
            live_doors(tmp_path / "server", rate_limit=3) as doors,
            doors.transport(door) as transport,
        ):
            viewer = await register(transport)
            statuses, retry_after = [], None
            for _ in range(4):
                answer = await transport.request(
                    "GET", "/api/omega/patterns?since=0", body=None, headers=bearer(viewer)
                )
                statuses.append(answer.status)
                retry_after = answer.header("retry-after")
            assert statuses == [200, 200, 200, 429]
            assert retry_after is not None and int(retry_after) > 0

    asyncio.run(scenario())


@pytest.mark.parametrize("mode", ["truncate", "flip", "garbage"])
def test_a_damaged_answer_applies_nothing_and_the_next_sync_succeeds(
    tmp_path: Path, door: str, mode: str
) -> None:
    clock = ManualClock()
    tv = open_brain(tmp_path / "tv", clock)

    async def scenario() -> None:
        async with live_doors(tmp_path / "server") as doors, doors.transport(door) as transport:
            client = SyncClient(tv, transport)
            await client.fetch_codebook()
            watch(tv, clock, [0, 1, 2])
            doors.tamper(mode)
            with pytest.raises(RemoteProtocolError):
                await client.sync()
            inflight = tv.sync.inflight()
            assert inflight is not None  # the server committed it; the TV never saw the ack
            assert tv.sync.cursor("release_version", "none") == "none"
            result = await client.sync()
            assert result.resent and result.batch_id == inflight.batch_id
            assert result.accepted == result.pushed > 0
            assert tv.sync.inflight() is None and tv.sync.outbox_size() == 0
            upserts = pending_upserts(doors.db_path, result.viewer_id)
            assert len(upserts) == result.pushed and set(upserts.values()) == {1}

    asyncio.run(scenario())
    tv.close()


def test_a_token_expiring_mid_sync_costs_one_refresh_and_loses_nothing(
    tmp_path: Path, door: str
) -> None:
    clock = ManualClock()
    tv = open_brain(tmp_path / "tv", clock)

    async def scenario() -> None:
        async with (
            live_doors(tmp_path / "server", access_token_ttl=TTL, jwt_leeway=0) as doors,
            doors.transport(door) as transport,
        ):
            expired: list[str] = []

            def expire(step: str) -> None:
                if step == "batch-recorded" and not expired:
                    expired.append(step)
                    doors.clock.advance(2 * TTL)  # the server's clock: the token dies now

            client = SyncClient(tv, transport, on_step=expire)
            await client.fetch_codebook()
            first = load_credentials(tv)
            watch(tv, clock, [0, 1, 2])
            result = await client.sync()
            assert result.refreshes == 1
            assert result.accepted == result.pushed > 0
            assert tv.sync.outbox_size() == 0 and tv.sync.inflight() is None
            upserts = pending_upserts(doors.db_path, result.viewer_id)
            assert len(upserts) == result.pushed and set(upserts.values()) == {1}
            kept = load_credentials(tv)
            assert kept is not None and first is not None
            assert kept.refresh_token != first.refresh_token

    asyncio.run(scenario())
    tv.close()
