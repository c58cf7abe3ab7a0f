"""Register, push, pull over a real server — against SQLite and PostgreSQL alike."""

from __future__ import annotations

import httpx
import jwt
import pytest
from _constellation_harness import (
    BINARY,
    Device,
    ServerProcess,
    preference,
    publish_codebook,
    run_round,
    stats,
)
from cryptography.hazmat.primitives import serialization

from omega.protocol import codec
from omega.protocol.messages import (
    PullRequest,
    PullResponse,
    PushAck,
    PushRequest,
    RegistrationResponse,
    SyncRequest,
    SyncResponse,
    TokenRefresh,
)


@pytest.fixture(scope="module")
def codebook_id(sync_server: ServerProcess) -> str:
    return publish_codebook(sync_server)


def test_register_push_and_pull_round_trip(
    sync_server: ServerProcess, sync_client: httpx.Client, codebook_id: str
) -> None:
    device = Device.register(sync_client)
    push = device.push([preference(1), preference(2)], codebook_id=codebook_id)
    answer = device.sync(push)
    assert answer.ack is not None
    assert answer.ack.batch_id == push.batch_id
    assert sorted(answer.ack.accepted) == ["pref-1", "pref-2"]
    assert answer.ack.rejected == []
    assert answer.pull.version >= 0
    assert answer.pull.next_sync_after > 0

    own = sync_client.get(f"/api/omega/viewers/{device.viewer_id}", headers=device.auth)
    assert own.status_code == 200
    assert own.json()["device_model"] == "test-tv"


def test_three_viewers_agreeing_produce_a_release_every_viewer_pulls(
    sync_server: ServerProcess, sync_client: httpx.Client, codebook_id: str
) -> None:
    devices = [Device.register(sync_client) for _ in range(3)]
    for device in devices:
        patterns = [preference(cell) for cell in range(10, 64)]
        device.sync(device.push(patterns, codebook_id=codebook_id))
    before = stats(sync_server)["version"]
    result = run_round(sync_server)
    assert result["version"] > before

    # A budget far below the release: the cursor still moves, with the top-weight share.
    reader = Device.register(sync_client)
    small = reader.sync(since=before, max_bytes=1024).pull
    assert len(codec.encode(small)) <= 1024
    assert small.version == result["version"]
    assert 0 < len(small.patterns) < 54
    assert small.more
    weights = [p.weight for p in small.patterns]
    assert weights == sorted(weights, reverse=True)
    assert reader.sync(since=small.version, max_bytes=1024).pull.patterns == []

    # A budget that holds it all: every agreed pattern, each backed by three viewers.
    full = reader.sync(since=before, max_bytes=1 << 20).pull
    assert full.version == result["version"]
    assert not full.more
    assert {p.id for p in small.patterns} <= {p.id for p in full.patterns}
    assert len(full.patterns) >= 54
    assert all(p.viewers >= 3 for p in full.patterns)


def test_retried_push_applies_exactly_once(
    sync_server: ServerProcess, sync_client: httpx.Client, codebook_id: str
) -> None:
    device = Device.register(sync_client)
    push = device.push([preference(5), preference(6)], codebook_id=codebook_id)
    pending_before = stats(sync_server)["pending_contributions"]
    first = device.sync(push)
    pending_after = stats(sync_server)["pending_contributions"]
    # The response was "lost": the device sends the very same batch again, twice.
    second = device.sync(push)
    third = device.post_frame("/api/omega/patterns", codec.encode(push))
    assert third.status_code == 200
    assert first.ack == second.ack == codec.decode(third.content, expect=PushAck)
    assert pending_after - pending_before == 2
    assert stats(sync_server)["pending_contributions"] == pending_after


def test_reused_batch_id_with_another_payload_is_422(
    sync_server: ServerProcess, sync_client: httpx.Client, codebook_id: str
) -> None:
    device = Device.register(sync_client)
    push = device.push([preference(7)], codebook_id=codebook_id, batch_id="batch-1")
    assert device.sync(push).ack is not None
    other = device.push([preference(8)], codebook_id=codebook_id, batch_id="batch-1")
    response = device.sync_raw(other)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "batch-1" in response.json()["detail"]


def test_patterns_for_another_codebook_are_rejected_with_a_reason(
    sync_client: httpx.Client, codebook_id: str
) -> None:
    device = Device.register(sync_client)
    push = device.push([preference(1)], codebook_id="cb-stale")
    ack = device.sync(push).ack
    assert ack is not None
    assert ack.accepted == []
    assert [r.pattern_id for r in ack.rejected] == ["pref-1"]
    assert "cb-stale" in ack.rejected[0].reason

    out_of_range = device.push([preference(9999)], codebook_id=codebook_id)
    ack = device.sync(out_of_range).ack
    assert ack is not None
    assert ack.rejected
    assert "outside codebook" in ack.rejected[0].reason


def test_json_sync_is_answered_in_json(sync_client: httpx.Client, codebook_id: str) -> None:
    device = Device.register(sync_client)
    request = SyncRequest(
        pull=PullRequest(viewer_id=device.viewer_id),
        push=PushRequest(
            viewer_id=device.viewer_id,
            batch_id="json-1",
            codebook_id=codebook_id,
            added=[preference(3)],
        ),
    )
    response = sync_client.post(
        "/api/omega/sync",
        content=codec.encode_json(request),
        headers={"Content-Type": "application/json", **device.auth},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    answer = codec.decode_json(response.content, expect=SyncResponse)
    assert answer.ack is not None
    assert answer.ack.accepted == ["pref-3"]


def test_push_only_and_pull_only_endpoints(sync_client: httpx.Client, codebook_id: str) -> None:
    device = Device.register(sync_client)
    push = device.push([preference(4)], codebook_id=codebook_id)
    response = device.post_frame("/api/omega/patterns", codec.encode(push))
    assert response.status_code == 200
    assert codec.decode(response.content, expect=PushAck).accepted == ["pref-4"]

    pulled = sync_client.get(
        "/api/omega/patterns", params={"since": 0}, headers={"Accept": BINARY, **device.auth}
    )
    assert pulled.status_code == 200
    assert pulled.headers["content-type"] == BINARY
    assert codec.decode(pulled.content, expect=PullResponse).version >= 0
    as_json = sync_client.get("/api/omega/patterns", params={"since": 0}, headers=device.auth)
    assert as_json.headers["content-type"] == "application/json"
    assert isinstance(as_json.json()["patterns"], list)


def test_a_device_ahead_of_the_server_is_sent_everything_again(
    sync_server: ServerProcess, sync_client: httpx.Client, codebook_id: str
) -> None:
    device = Device.register(sync_client)
    current = stats(sync_server)["version"]
    answer = device.sync(since=current + 1000, max_bytes=1 << 20).pull
    assert answer.version == current  # the cursor moves back to the server's history
    assert len(answer.patterns) == stats(sync_server)["released_patterns"]


def test_viewers_can_read_the_codebook(sync_client: httpx.Client, codebook_id: str) -> None:
    device = Device.register(sync_client)
    response = sync_client.get("/api/omega/codebook", headers=device.auth)
    assert response.status_code == 200
    doc = response.json()
    assert doc["codebook_id"] == codebook_id
    assert doc["k"] == 64
    assert sync_client.get("/api/omega/codebook").status_code == 401


def test_an_expired_token_mid_sync_loses_nothing(
    sync_server: ServerProcess, sync_client: httpx.Client, codebook_id: str
) -> None:
    device = Device.register(sync_client)
    push = device.push([preference(11)], codebook_id=codebook_id)
    pending = stats(sync_server)["pending_contributions"]
    device.access_token = _expired_copy(sync_server, device)
    refused = device.sync_raw(push)
    assert refused.status_code == 401
    assert "expired" in refused.json()["detail"]
    assert stats(sync_server)["pending_contributions"] == pending  # nothing half-applied

    renewed = sync_client.post(
        "/api/omega/token",
        content=codec.encode(TokenRefresh(refresh_token=device.refresh_token)),
        headers={"Content-Type": BINARY},
    )
    assert renewed.status_code == 200
    assert renewed.headers["content-type"] == BINARY
    device.access_token = codec.decode(renewed.content, expect=RegistrationResponse).access_token
    ack = device.sync(push).ack
    assert ack is not None
    assert ack.accepted == ["pref-11"]
    assert stats(sync_server)["pending_contributions"] == pending + 1


def _expired_copy(server: ServerProcess, device: Device) -> str:
    """The device's access token as it will look after expiry, signed with the server's key."""
    header = jwt.get_unverified_header(device.access_token)
    claims = jwt.decode(device.access_token, options={"verify_signature": False})
    claims["iat"] -= 3600
    claims["nbf"] = claims["iat"]
    claims["exp"] = claims["iat"] + 900
    pem = (server.data_dir / "jwt-keys" / f"{header['kid']}.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    return jwt.encode(claims, key, algorithm="EdDSA", headers=header)  # type: ignore[arg-type]
