"""The gRPC door (``sync.proto``) of a live ``omega`` server: the same answers as the HTTP
door (it calls the same app), HTTP statuses mapped to gRPC codes with the HTTP status in
trailing metadata, and bad input refused on the door with a clear status — nothing
stored, the server still serving."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import msgspec
import pytest
import zstandard
from _constellation_harness import (
    MANUFACTURER,
    ServerProcess,
    preference,
    publish_codebook,
    start_server,
    stats,
)

from omega.constellation import Settings, create_app
from omega.constellation.doors.grpc_door import ENVELOPE_BYTES
from omega.errors import ConfigError
from omega.proto import RPCS, sync_pb2
from omega.protocol import codec, signing
from omega.protocol.messages import (
    PullRequest,
    PullResponse,
    PushAck,
    PushRequest,
    Registration,
    RegistrationResponse,
    SyncRequest,
    SyncResponse,
)
from omega.sync.transport import AsgiTransport

MAX_BODY = 8192
PATHS = {rpc.name: rpc.full_path for rpc in RPCS}


@pytest.fixture(scope="module")
def door_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with its gRPC door on a free port, a small body limit, 20 requests a
    minute per viewer."""
    process = start_server(
        tmp_path_factory.mktemp("grpc-door"),
        OMEGA_GRPC_PORT="0",
        OMEGA_MAX_BODY_BYTES=str(MAX_BODY),
        OMEGA_RATE_LIMIT="20",
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def channel(door_server: ServerProcess) -> Iterator[grpc.Channel]:
    address = (door_server.data_dir / "grpc-address").read_text().strip()
    with grpc.insecure_channel(address) as c:
        yield c


@pytest.fixture(scope="module")
def codebook_id(door_server: ServerProcess) -> str:
    return publish_codebook(door_server)


def call(channel: grpc.Channel, rpc: str, raw: bytes, token: str | None = None, **kw: Any) -> Any:
    """One unary RPC with raw bytes both ways."""
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    return channel.unary_unary(PATHS[rpc])(raw, metadata=kw.pop("metadata", metadata), **kw)


def refused(channel: grpc.Channel, rpc: str, raw: bytes, token: str | None = None, **kw: Any):  # type: ignore[no-untyped-def]
    """The error status of a call that must fail, and its trailing metadata."""
    with pytest.raises(grpc.RpcError) as caught:
        call(channel, rpc, raw, token, **kw)
    error: Any = caught.value
    return error.code(), error.details(), dict(error.trailing_metadata() or ())


def register(channel: grpc.Channel, identity: Any = None) -> tuple[RegistrationResponse, bool]:
    """A device registered over the door (attested); True if it is a new viewer."""
    identity = identity or MANUFACTURER.device(uuid.uuid4().hex, model="test-tv")
    frame = codec.encode(identity.attest(Registration(device_model="test-tv")))
    raw = call(channel, "Register", sync_pb2.RegisterRequest(frame=frame).SerializeToString())
    answer = sync_pb2.RegisterResponse.FromString(raw)
    return codec.decode(answer.frame, expect=RegistrationResponse), answer.created


def sync_frame(viewer_id: str, push: PushRequest | None = None, *, since: int = 0) -> bytes:
    pull = PullRequest(viewer_id=viewer_id, since_version=since, max_bytes=5120)
    return codec.encode(SyncRequest(pull=pull, push=push, nonce=uuid.uuid4().bytes))


def stream(channel: grpc.Channel, token: str, frames: list[bytes]) -> list[bytes]:
    """Every frame on one StreamSync stream; the answers' frames, in order."""
    requests = (sync_pb2.SyncRequest(frame=f).SerializeToString() for f in frames)
    metadata = (("authorization", f"Bearer {token}"),)
    answers = channel.stream_stream(PATHS["StreamSync"])(requests, metadata=metadata)
    return [sync_pb2.SyncResponse.FromString(raw).frame for raw in answers]


def test_register_push_pull_and_stream_sync(
    channel: grpc.Channel, door_server: ServerProcess, codebook_id: str
) -> None:
    viewer, created = register(channel)
    assert created
    tv = MANUFACTURER.device(uuid.uuid4().hex, model="test-tv")
    assert register(channel, tv)[1] and not register(channel, tv)[1]  # 201, then 200
    # The same TV under another device key: the app's 409, ALREADY_EXISTS here.
    stranger = MANUFACTURER.device(tv.certificate.device_id, model="test-tv")
    frame = codec.encode(stranger.attest(Registration(device_model="test-tv")))
    code, detail, trailers = refused(
        channel, "Register", sync_pb2.RegisterRequest(frame=frame).SerializeToString()
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS and "re-keys" in detail
    assert trailers["omega-http-status"] == "409"
    keys = viewer.release_keys
    push = PushRequest(
        viewer_id=viewer.viewer_id,
        batch_id=uuid.uuid4().hex,
        codebook_id=codebook_id,
        added=[preference(1), preference(2)],
    )
    frames = [sync_frame(viewer.viewer_id, push), sync_frame(viewer.viewer_id)]
    frames.append(sync_frame(viewer.viewer_id))
    answers = stream(channel, viewer.access_token, frames)
    assert len(answers) == 3
    for request, answer in zip(frames, answers, strict=True):  # each sealed to its request
        signing.verify(answer, request=signing.request_digest(request), trusted=keys)
    first = codec.decode(answers[0], expect=SyncResponse)
    assert first.ack is not None and sorted(first.ack.accepted) == ["pref-1", "pref-2"]

    again = msgspec.structs.replace(push, batch_id=uuid.uuid4().hex)
    raw = call(
        channel,
        "PushPatterns",
        sync_pb2.PushRequest(frame=codec.encode(again)).SerializeToString(),
        viewer.access_token,
    )
    ack = codec.decode(sync_pb2.PushAck.FromString(raw).frame, expect=PushAck)
    assert ack.batch_id == again.batch_id and len(ack.accepted) == 2
    raw = call(
        channel,
        "PullPatterns",
        sync_pb2.PullRequest(since=0, max_bytes=2048).SerializeToString(),
        viewer.access_token,
    )
    pulled = sync_pb2.PullResponse.FromString(raw).frame
    signing.verify(pulled, request=signing.UNBOUND, trusted=keys)
    assert codec.decode(pulled, expect=PullResponse).version == stats(door_server)["version"]
    document = sync_pb2.ReleaseKeys.FromString(call(channel, "GetReleaseKeys", b"")).json
    assert document == httpx.get(door_server.base_url + "/api/omega/release-keys").content


def test_a_push_is_applied_once_however_often_it_comes(
    channel: grpc.Channel, door_server: ServerProcess, codebook_id: str
) -> None:
    viewer, _ = register(channel)
    push = PushRequest(
        viewer_id=viewer.viewer_id,
        batch_id=uuid.uuid4().hex,
        codebook_id=codebook_id,
        added=[preference(5), preference(6)],
    )
    pending_before = stats(door_server)["pending_contributions"]
    frame = sync_pb2.PushRequest(frame=codec.encode(push)).SerializeToString()
    first = call(channel, "PushPatterns", frame, viewer.access_token)
    pending_after = stats(door_server)["pending_contributions"]
    # The answer was "lost": the very same batch again, as a push and twice in a stream.
    assert call(channel, "PushPatterns", frame, viewer.access_token) == first
    answers = stream(channel, viewer.access_token, [sync_frame(viewer.viewer_id, push)] * 2)
    acks = [codec.decode(a, expect=SyncResponse).ack for a in answers]
    assert acks[0] == acks[1] == codec.decode(sync_pb2.PushAck.FromString(first).frame)
    assert pending_after - pending_before == 2
    assert stats(door_server)["pending_contributions"] == pending_after
    # The same batch id with another payload: the app's 422, INVALID_ARGUMENT here.
    other = msgspec.structs.replace(push, added=[preference(7)])
    raw = sync_pb2.PushRequest(frame=codec.encode(other)).SerializeToString()
    code, detail, trailers = refused(channel, "PushPatterns", raw, viewer.access_token)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and push.batch_id in detail
    assert trailers["omega-http-status"] == "422"
    assert trailers["omega-problem"] == "idempotency-conflict"


def test_refusals_carry_the_matching_code_and_the_http_status(channel: grpc.Channel) -> None:
    viewer, _ = register(channel)
    other, _ = register(channel)
    pull = sync_pb2.PullRequest(since=0).SerializeToString()

    code, detail, trailers = refused(channel, "PullPatterns", pull)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "access token" in detail
    assert trailers["omega-http-status"] == "401" and trailers["omega-problem"] == "unauthorized"
    code, _, trailers = refused(channel, "PullPatterns", pull, "not-a-token")
    assert code == grpc.StatusCode.UNAUTHENTICATED and trailers["omega-http-status"] == "401"
    # No registration frame: the defaults, unattested, which this server refuses.
    code, _, trailers = refused(channel, "Register", b"")
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert trailers["omega-problem"] == "attestation-required"

    theirs = sync_pb2.SyncRequest(frame=sync_frame(other.viewer_id)).SerializeToString()
    with pytest.raises(grpc.RpcError) as caught:
        next(
            channel.stream_stream(PATHS["StreamSync"])(
                iter([theirs]), metadata=(("authorization", f"Bearer {viewer.access_token}"),)
            )
        )
    error: Any = caught.value
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert dict(error.trailing_metadata())["omega-problem"] == "not-your-viewer"

    codes = []
    for _ in range(25):  # 20 a minute; a few went above
        try:
            call(channel, "PullPatterns", pull, other.access_token)
        except grpc.RpcError as exc:
            codes.append(exc)
    assert codes, "the rate limit never answered"
    limited: Any = codes[0]
    assert limited.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailers = dict(limited.trailing_metadata())
    assert trailers["omega-http-status"] == "429" and int(trailers["retry-after"]) >= 1


def test_bodies_over_the_limits_are_resource_exhausted(
    channel: grpc.Channel, door_server: ServerProcess
) -> None:
    viewer, _ = register(channel)
    before = stats(door_server)
    over = sync_pb2.PushRequest(frame=bytes(MAX_BODY + 10)).SerializeToString()
    assert len(over) <= MAX_BODY + ENVELOPE_BYTES  # within what gRPC takes: the app's 413
    zeros = zstandard.ZstdCompressor().compress(bytes(16 << 20))
    bomb = sync_pb2.PushRequest(frame=codec.frame(zeros, flags=codec.FLAG_ZSTD))
    cases = [
        ("PushPatterns", over),
        ("PushPatterns", bomb.SerializeToString()),  # small on the wire, 16 MB decompressed
    ]
    for rpc, raw in cases:
        code, detail, trailers = refused(channel, rpc, raw, viewer.access_token)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit" in detail
        assert trailers["omega-http-status"] == "413" and trailers["omega-problem"] == "too-large"
    # Past the limit and the envelope, gRPC refuses it before the app sees it, also when
    # gRPC's own compression hides the size.
    huge = sync_pb2.PushRequest(frame=bytes(1 << 20)).SerializeToString()
    code, detail, trailers = refused(channel, "PushPatterns", huge, viewer.access_token)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in detail
    code, detail, _ = refused(
        channel, "PushPatterns", huge, viewer.access_token, compression=grpc.Compression.Gzip
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in detail
    assert stats(door_server)["pending_contributions"] == before["pending_contributions"]
    still = stream(channel, viewer.access_token, [sync_frame(viewer.viewer_id)])
    assert codec.decode(still[0], expect=SyncResponse).pull.version == before["version"]


def test_malformed_protobuf_and_wrong_metadata_are_refused_and_the_door_serves_on(
    channel: grpc.Channel, door_server: ServerProcess
) -> None:
    viewer, _ = register(channel)
    before = stats(door_server)
    corrupt = b"\x0a\x05ab"  # field 1, five bytes announced, two sent
    for rpc in ("Register", "PushPatterns", "PullPatterns"):
        code, detail, trailers = refused(channel, rpc, corrupt, viewer.access_token)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "is not a valid omega.sync.v1." in detail and "malformed" in detail
        assert trailers["omega-http-status"] == "400"
    with pytest.raises(grpc.RpcError) as caught:
        stream(channel, viewer.access_token, [corrupt])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    garbage = sync_pb2.PushRequest(frame=b"\x01\x00garbage").SerializeToString()
    code, _, trailers = refused(channel, "PushPatterns", garbage, viewer.access_token)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and trailers["omega-problem"] == "bad-message"

    pull = sync_pb2.PullRequest().SerializeToString()
    token = f"Bearer {viewer.access_token}"
    for metadata in [
        (("authorization", token), ("authorization", token)),
        (("authorization", f"Basic {viewer.access_token}"),),
        (("authorization", viewer.access_token),),
        (("x-token", token),),
    ]:
        code, detail, trailers = refused(channel, "PullPatterns", pull, metadata=metadata)
        assert code == grpc.StatusCode.UNAUTHENTICATED, detail
        assert trailers["omega-http-status"] == "401"
    after = stats(door_server)
    assert after["viewers"] == before["viewers"]
    assert after["pending_contributions"] == before["pending_contributions"]
    answers = stream(channel, viewer.access_token, [sync_frame(viewer.viewer_id)])
    assert codec.decode(answers[0], expect=SyncResponse).ack is None


# -- the door in this process: its settings ---------------------------------------------
def _settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "admin_token": "grpc-door-admin-token-0123",
        "federation_interval": 0,
        "allow_unattested": True,
        "gc_freeze": False,
        **overrides,
    }
    return Settings(**values)


def test_the_door_stays_closed_without_a_port(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with AsgiTransport(create_app(_settings(tmp_path))):
            assert not (tmp_path / "grpc-address").exists()

    asyncio.run(scenario())


def test_a_port_in_use_stops_the_start_with_a_sentence(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        app = create_app(_settings(tmp_path, grpc_port=taken.getsockname()[1]))

        async def scenario() -> None:
            with pytest.raises(ConfigError, match=r"cannot listen on 127\.0\.0\.1"):
                async with AsgiTransport(app):
                    pass

        asyncio.run(scenario())


def test_an_idle_stream_is_ended_by_the_server(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, grpc_port=0, grpc_stream_idle=0.2))

    async def scenario() -> None:
        async with AsgiTransport(app):
            address = (tmp_path / "grpc-address").read_text().strip()
            async with grpc.aio.insecure_channel(address) as aio:
                call = aio.stream_stream(PATHS["StreamSync"])()
                code = await asyncio.wait_for(call.code(), timeout=30)
                assert code == grpc.StatusCode.OK
        assert not (tmp_path / "grpc-address").exists()  # removed when the door closed

    asyncio.run(scenario())


def test_omega_serve_refuses_a_taken_grpc_port_in_one_sentence(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "omega.cli", "serve", "--port", "0"]
        command += ["--data-dir", str(tmp_path), "--grpc-port", str(port)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"--grpc-port {port}: cannot listen on 127.0.0.1" in done.stderr
    assert "Traceback" not in done.stderr


def test_every_http_status_has_a_fitting_grpc_code() -> None:
    """Statuses the table names, then the fallbacks: another 4xx cannot succeed as the
    server stands; another 5xx, or a redirect the app should never give the door, is the
    server's fault (the exact status still travels in the trailers)."""
    from omega.proto import code_for_status, status_for_code

    code = grpc.StatusCode
    assert code_for_status(406) == code.INVALID_ARGUMENT
    assert code_for_status(408) == code.DEADLINE_EXCEEDED
    assert code_for_status(410) == code.NOT_FOUND
    assert code_for_status(425) == code.UNAVAILABLE
    assert code_for_status(412) == code.FAILED_PRECONDITION
    assert code_for_status(302) == code.INTERNAL
    assert code_for_status(100) == code.INTERNAL
    assert code_for_status(599) == code.INTERNAL
    for status in range(100, 600):
        back = status_for_code(code_for_status(status))
        if status < 400 or status >= 500:
            assert back >= 500, status  # the server's side
        elif status not in (405, 408, 425):  # by google.rpc.Code: 501, 504, 503
            assert 400 <= back < 500, status
