"""The device's gRPC transport (``omega.sync.grpc_transport``): a real brain syncs end to end
through the gRPC door on one StreamSync stream; the door's refusals come back as the very
answers the HTTP door gives, so the client decides alike (refresh, wait, stop); no server
is a TransportError, with nothing lost."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from _sync_world import (
    Server,
    crowd_release,
    inprocess_settings,
    open_brain,
    pending_upserts,
    publish_codebook_via,
    start_server,
    watch,
)

from omega.clock import ManualClock
from omega.constellation import create_app
from omega.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    LocalProtocolError,
    ServerError,
    TransportError,
)
from omega.proto.routes import SERVICE
from omega.proto.sync_pb2 import SyncResponse
from omega.protocol import BINARY_MEDIA_TYPE, codec
from omega.protocol.messages import PullRequest, PushRequest, SyncRequest
from omega.sync import AsgiTransport, RetryPolicy, SyncClient
from omega.sync.cursors import load_credentials
from omega.sync.grpc_transport import GrpcTransport
from omega.sync.replies import error_for, problem_slug

TTL = 60


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """A live server with its gRPC door on a free port, the test codebook published."""
    process = start_server(tmp_path_factory.mktemp("grpc-sync"), OMEGA_GRPC_PORT="0")
    process.publish_codebook()
    yield process, (process.data_dir / "grpc-address").read_text().strip()
    process.stop()


def test_a_brain_syncs_end_to_end_over_grpc(door: tuple[Server, str], tmp_path: Path) -> None:
    server, address = door
    clock = ManualClock()
    tv = open_brain(tmp_path / "tv", clock)

    async def scenario() -> None:
        async with GrpcTransport(address) as transport:
            client = SyncClient(tv, transport)
            assert await client.fetch_codebook()  # registers, pins keys, adopts the codebook
            watch(tv, clock, [0, 1, 2])
            first = await client.sync()
            assert first.accepted == first.pushed > 0 and first.rejected == 0
            assert tv.sync.outbox_size() == 0 and tv.sync.inflight() is None
            upserts = pending_upserts(server.data_dir / "constellation.db", first.viewer_id)
            assert len(upserts) == first.pushed and set(upserts.values()) == {1}

            version = crowd_release(server, [[3, 4]])
            second = await client.sync()
            assert second.version == version == tv.sync.release_version()
            assert second.pulled > 0
            assert transport.streams_opened == 1  # both syncs on the device's one stream

    asyncio.run(scenario())
    tv.close()


# -- the door in this process (its clock moved by hand) ------------------------------------
def _app(tmp_path: Path, clock: ManualClock, **settings: Any) -> Any:
    values = {"access_token_ttl": TTL, "jwt_leeway": 0, "grpc_port": 0, **settings}
    return create_app(inprocess_settings(tmp_path / "server", **values), clock=clock)


def _address(tmp_path: Path) -> str:
    return (tmp_path / "server" / "grpc-address").read_text().strip()


def test_token_expiring_mid_sync_costs_one_refresh_and_one_new_stream(tmp_path: Path) -> None:
    clock = ManualClock()
    app = _app(tmp_path, clock)
    tv = open_brain(tmp_path / "tv", clock)

    async def scenario() -> None:
        async with AsgiTransport(app) as admin, GrpcTransport(_address(tmp_path)) as transport:
            await publish_codebook_via(admin)
            expired: list[str] = []

            def expire(step: str) -> None:
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
            kept = load_credentials(tv)
            assert kept is not None and first is not None
            assert kept.refresh_token != first.refresh_token
            # The refused stream ended; the new token opened the next one.
            assert transport.streams_opened == 2

    asyncio.run(scenario())
    tv.close()


def test_rate_limited_sync_is_a_server_error_with_retry_after(tmp_path: Path) -> None:
    clock = ManualClock()
    app = _app(tmp_path, clock, rate_limit=2, rate_window=30)
    tv = open_brain(tmp_path / "tv", clock)
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    async def scenario() -> None:
        async with AsgiTransport(app) as admin, GrpcTransport(_address(tmp_path)) as transport:
            await publish_codebook_via(admin)
            retry = RetryPolicy(attempts=3, base=0.1, cap=1.0, max_retry_after=60, sleep=no_sleep)
            client = SyncClient(tv, transport, retry=retry)
            await client.fetch_codebook()
            await client.sync()
            with pytest.raises(ServerError) as caught:
                await client.sync()
            assert caught.value.status == 429
            assert caught.value.retry_after is not None and caught.value.retry_after > 0
            assert len(waits) == 2 and all(w >= 1 for w in waits)

    asyncio.run(scenario())
    tv.close()


def test_the_door_refuses_as_the_http_door_does(tmp_path: Path) -> None:
    """The same requests through both doors of one app: the same statuses, problem slugs,
    details and errors; the same JSON documents."""
    clock = ManualClock()
    app = _app(tmp_path, clock)
    tv = open_brain(tmp_path / "tv", clock)

    async def scenario() -> None:
        async with AsgiTransport(app) as http, GrpcTransport(_address(tmp_path)) as grpc_door:
            await publish_codebook_via(http)
            client = SyncClient(tv, grpc_door)
            creds = await client.credentials()
            other = await SyncClient(open_brain(tmp_path / "other", clock), http).credentials()
            bearer = {"Authorization": f"Bearer {creds.access_token}"}
            binary = {"Content-Type": BINARY_MEDIA_TYPE, **bearer}
            theirs = SyncRequest(pull=PullRequest(viewer_id=other.viewer_id))
            push = PushRequest(viewer_id=creds.viewer_id, batch_id="b-1", codebook_id="cb")
            conflicting = PushRequest(
                viewer_id=creds.viewer_id, batch_id="b-1", codebook_id="cb", removed=["x"]
            )
            assert (await http.request("POST", "/api/omega/patterns", body=codec.encode(push),
                                       headers=binary)).status == 200  # fmt: skip
            cases: list[tuple[str, str, bytes | None, dict[str, str]]] = [
                ("GET", "/api/omega/release-keys", None, {}),
                ("GET", "/api/omega/codebook", None, bearer),
                ("GET", "/api/omega/codebook", None, {}),
                ("GET", f"/api/omega/patterns?since={2**63}", None, bearer),
                ("POST", "/api/omega/sync", codec.encode(theirs), binary),
                ("POST", "/api/omega/sync", b"\x01\x00garbage", binary),
                ("POST", "/api/omega/patterns", codec.encode(conflicting), binary),
                ("POST", "/api/omega/token", b"\x01\x00garbage", binary),
            ]
            for method, path, body, headers in cases:
                one = await http.request(method, path, body=body, headers=headers)
                two = await grpc_door.request(method, path, body=body, headers=headers)
                assert one.status == two.status, (path, one.body, two.body)
                if one.status < 400:
                    assert one.body == two.body
                    assert one.header("content-type") == two.header("content-type")
                    continue
                assert problem_slug(one) == problem_slug(two) is not None
                assert type(error_for(one)) is type(error_for(two))
                assert str(error_for(one)) == str(error_for(two))
            refused = await grpc_door.request("POST", "/api/omega/sync", body=codec.encode(theirs),
                                              headers=binary)  # fmt: skip
            assert isinstance(error_for(refused), AuthError)  # a lasting refusal, as over HTTP
            clash = await grpc_door.request(
                "POST", "/api/omega/patterns", body=codec.encode(conflicting), headers=binary
            )
            assert isinstance(error_for(clash), ConflictError)

    asyncio.run(scenario())
    tv.close()


def test_a_stream_ended_by_the_server_is_replaced_on_the_next_sync(tmp_path: Path) -> None:
    clock = ManualClock()
    app = _app(tmp_path, clock, grpc_stream_idle=0.2)
    tv = open_brain(tmp_path / "tv", clock)

    async def scenario() -> None:
        async with AsgiTransport(app) as admin, GrpcTransport(_address(tmp_path)) as transport:
            await publish_codebook_via(admin)
            client = SyncClient(tv, transport)
            await client.sync()
            stream = transport._stream
            assert stream is not None
            await asyncio.wait_for(stream.call.code(), timeout=30)  # the server's idle limit
            await client.sync()
            assert transport.streams_opened == 2

        # A device that waits longer than reuse_for opens a new stream itself.
        async with AsgiTransport(app), GrpcTransport(_address(tmp_path), reuse_for=0) as eager:
            client = SyncClient(tv, eager)
            await client.sync()
            await client.sync()
            assert eager.streams_opened == 2

    asyncio.run(scenario())
    tv.close()


def test_no_server_is_a_transport_error_and_nothing_is_lost(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    clock = ManualClock()
    tv = open_brain(tmp_path / "tv", clock)

    async def scenario() -> None:
        async with GrpcTransport(address, timeout=10) as transport:
            with pytest.raises(TransportError, match="unavailable"):
                await transport.request("GET", "/api/omega/release-keys", body=None, headers={})
            frame = codec.encode(SyncRequest(pull=PullRequest(viewer_id="v")))
            with pytest.raises(TransportError, match="unavailable"):
                await transport.request(
                    "POST",
                    "/api/omega/sync",
                    body=frame,
                    headers={"Content-Type": BINARY_MEDIA_TYPE, "Authorization": "Bearer t"},
                )
            with pytest.raises(TransportError):
                await SyncClient(tv, transport, retry=RetryPolicy(attempts=1)).sync()

    asyncio.run(scenario())
    tv.close()


def test_what_the_door_cannot_carry_is_refused_before_sending() -> None:
    async def scenario() -> None:
        async with GrpcTransport("127.0.0.1:9") as transport:
            with pytest.raises(LocalProtocolError, match="no RPC for GET /api/omega/stats"):
                await transport.request("GET", "/api/omega/stats", body=None, headers={})
            with pytest.raises(LocalProtocolError, match="frames"):
                await transport.request(
                    "POST",
                    "/api/omega/sync",
                    body=b"{}",
                    headers={"Content-Type": "application/json"},
                )
            with pytest.raises(LocalProtocolError, match="since and max_bytes"):
                await transport.request("GET", "/api/omega/patterns?sinse=1", body=None, headers={})

    asyncio.run(scenario())
    with pytest.raises(ConfigError, match="host:port"):
        GrpcTransport("http://127.0.0.1:8000")


def test_a_reused_stream_ended_unanswered_is_retried_once_on_a_new_one() -> None:
    """The race the idle timeout leaves: the server ends a device's stream just as the
    device writes its next request on it (the write is queued; the read finds the end).
    The request goes again on a new stream — once. A real gRPC server on loopback plays
    the door: it answers a stream's first request and ends the stream on its second,
    unanswered (what a handler returning as that request arrives does)."""
    reply = SyncResponse(frame=b"answer").SerializeToString()
    opened = []

    async def stream_sync(requests: Any, context: Any) -> Any:
        opened.append(1)
        answered = False
        async for _request in requests:
            if answered:
                return  # ends the stream with this request unanswered
            answered = True
            yield reply

    async def scenario() -> None:
        server = grpc.aio.server()
        handler = grpc.stream_stream_rpc_method_handler(stream_sync)
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(SERVICE, {"StreamSync": handler})]
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with GrpcTransport(f"127.0.0.1:{port}") as transport:
                body = codec.encode(SyncRequest(pull=PullRequest(viewer_id="v")))
                headers = {"Content-Type": BINARY_MEDIA_TYPE}
                for _ in range(3):
                    answer = await transport.request(
                        "POST", "/api/omega/sync", body=body, headers=headers
                    )
                    assert answer.status == 200 and answer.body == b"answer"
                assert transport.streams_opened == len(opened) == 3
        finally:
            await server.stop(None)

    asyncio.run(scenario())
