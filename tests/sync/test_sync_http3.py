"""The HTTP/3 door and the device's HTTP/3 transport, against a live constellation (uvicorn
in a child process, its QUIC door on a UDP port of loopback, a self-signed certificate
made for the module): sync, 0-RTT, 425, pinning, migration, limits and bad input."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _sync_world import Server, crowd_release, open_brain, start_server, watch
from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent

from omega.bench.certs import SelfSigned, self_signed
from omega.clock import ManualClock
from omega.constellation.doors.http3 import PORT_FILE
from omega.errors import TransportError
from omega.protocol import BINARY_MEDIA_TYPE, codec
from omega.protocol.messages import (
    Pattern,
    PushAck,
    PushRequest,
    Registration,
    RegistrationResponse,
)
from omega.sync import SyncClient
from omega.sync.h3_transport import Http3Transport

BINARY = {"Content-Type": BINARY_MEDIA_TYPE}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tls: SelfSigned) -> Iterator[Server]:
    """One constellation with its HTTP/3 door open on any free UDP port."""
    process = start_server(
        tmp_path_factory.mktemp("constellation-h3"),
        OMEGA_QUIC_CERT=str(tls.cert),
        OMEGA_QUIC_KEY=str(tls.key),
        OMEGA_QUIC_PORT="0",
        OMEGA_MAX_BODY_BYTES=str(64 * 1024),
    )
    process.publish_codebook()
    yield process
    process.stop()


def _url(server: Server) -> str:
    port = int((server.data_dir / PORT_FILE).read_text())
    return f"https://127.0.0.1:{port}"


def _metric(server: Server, name: str, **labels: str) -> float:
    """One sample of the server's /metrics (0 when it has not been counted yet)."""
    text = httpx.get(server.base_url + "/metrics").text
    wanted = re.escape(",".join(f'{k}="{v}"' for k, v in sorted(labels.items())))
    pattern = rf"^{name}\{{{wanted}\}} (\S+)$" if labels else rf"^{name} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def _register(transport: Http3Transport) -> RegistrationResponse:
    answer = await transport.request(
        "POST", "/api/omega/viewers", body=codec.encode(Registration()), headers=BINARY
    )
    assert answer.status == 201, answer.body
    return codec.decode(answer.body, expect=RegistrationResponse)


def _bearer(viewer: RegistrationResponse) -> dict[str, str]:
    return {**BINARY, "Authorization": f"Bearer {viewer.access_token}"}


def _push(viewer: RegistrationResponse, batch: str) -> bytes:
    patterns = [
        Pattern(id=f"h3-{c}", task="preference", cells=(c,), success_rate=0.9, support=9)
        for c in range(3)
    ]
    push = PushRequest(
        viewer_id=viewer.viewer_id, batch_id=batch, codebook_id="cb-sync-test", added=patterns
    )
    return codec.encode(push)


async def _ticket(transport: Http3Transport) -> None:
    """Wait until the server's session ticket (sent after the handshake) has arrived."""
    async with asyncio.timeout(10):
        while not transport.has_ticket:
            await asyncio.sleep(0.01)


class _RawH3(QuicConnectionProtocol):
    """aioquic's bare HTTP/3 client, for what Http3Transport never sends: a body of no
    declared size, bytes that are not HTTP/3."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.answers: dict[int, asyncio.Future[int]] = {}
        self.terminated: ConnectionTerminated | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived) and h3_event.stream_id in self.answers:
                status = dict(h3_event.headers)[b":status"]
                self.answers[h3_event.stream_id].set_result(int(status))

    async def request(self, path: str, headers: dict[str, str], body: bytes | None) -> int:
        stream_id = self._quic.get_next_available_stream_id()
        self.answers[stream_id] = asyncio.get_running_loop().create_future()
        fields = [(b":method", b"POST" if body else b"GET"), (b":scheme", b"https")]
        fields += [(b":authority", b"127.0.0.1"), (b":path", path.encode())]
        fields += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.h3.send_headers(stream_id, fields, end_stream=not body)
        if body:
            self.h3.send_data(stream_id, body, end_stream=True)
        self.transmit()
        async with asyncio.timeout(10):
            return await self.answers[stream_id]

    def open_body(self, path: str, chunk: bytes) -> int:
        """A POST whose body starts with ``chunk`` and never ends; its stream id."""
        stream_id = self._quic.get_next_available_stream_id()
        self.answers[stream_id] = asyncio.get_running_loop().create_future()
        fields = [(b":method", b"POST"), (b":scheme", b"https")]
        fields += [(b":authority", b"127.0.0.1"), (b":path", path.encode())]
        self.h3.send_headers(stream_id, fields)
        self.h3.send_data(stream_id, chunk, end_stream=False)
        self.transmit()
        return stream_id

    def send_garbage(self) -> None:
        stream_id = self._quic.get_next_available_stream_id()
        self._quic.send_stream_data(stream_id, b"\x07\xff\xff\xff\xff not an HTTP/3 frame")
        self.transmit()


@contextlib.asynccontextmanager
async def _raw(server: Server, tls: SelfSigned) -> AsyncIterator[_RawH3]:
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    configuration.load_verify_locations(cafile=str(tls.cert))
    port = int((server.data_dir / PORT_FILE).read_text())
    async with connect(
        "127.0.0.1", port, configuration=configuration, create_protocol=_RawH3
    ) as protocol:
        assert isinstance(protocol, _RawH3)
        yield protocol


def test_a_brain_syncs_end_to_end_over_http3(
    server: Server, tls: SelfSigned, tmp_path: Path
) -> None:
    """Learn → push over HTTP/3 → round → another TV pulls the release over HTTP/3."""
    crowd_release(server, [[5]])  # something released already: the first pull brings it
    clock = ManualClock()
    tv = open_brain(tmp_path / "tv", clock)
    watch(tv, clock, [0, 1, 2])

    async def sync() -> tuple[int, int, int, int]:
        async with Http3Transport(_url(server), pin=tls.pin) as transport:
            client = SyncClient(tv, transport)
            await client.fetch_codebook()
            result = await client.sync()
            return result.pushed, result.accepted, result.pulled, transport.stats.handshakes

    pushed, accepted, pulled, handshakes = asyncio.run(sync())
    assert pushed > 0 and accepted == pushed
    assert pulled > 0 and tv.learner.knowledge.collective_patterns > 0
    assert tv.sync.outbox_size() == 0 and tv.sync.inflight() is None
    assert handshakes == 1  # codebook, registration, release keys and the sync: one connection
    assert server.stats()["pending_contributions"] >= pushed
    tv.close()


def test_push_and_pull_answer_as_over_http(server: Server, tls: SelfSigned) -> None:
    async def scenario() -> None:
        async with Http3Transport(_url(server), pin=tls.pin) as transport:
            viewer = await _register(transport)
            body = _push(viewer, "round-trip")
            first = await transport.request(
                "POST", "/api/omega/patterns", body=body, headers=_bearer(viewer)
            )
            again = await transport.request(
                "POST", "/api/omega/patterns", body=body, headers=_bearer(viewer)
            )
            assert first.status == again.status == 200
            ack = codec.decode(first.body, expect=PushAck)
            assert len(ack.accepted) == 3 and codec.decode(again.body, expect=PushAck) == ack
            pull = await transport.request(
                "GET", "/api/omega/patterns?since=0", body=None, headers=_bearer(viewer)
            )
            assert pull.status == 200 and pull.header("content-type") == "application/json"
            missing = await transport.request("GET", "/api/omega/patterns", body=None, headers={})
            assert missing.status == 401
            assert missing.header("content-type") == "application/problem+json"

    asyncio.run(scenario())


def test_a_resumed_connection_pulls_in_0rtt(server: Server, tls: SelfSigned) -> None:
    answered = _metric(server, "omega_http3_early_requests_total", outcome="answered")
    resumed = _metric(server, "omega_http3_connections_total", resumed="yes")

    async def scenario() -> None:
        async with Http3Transport(_url(server), pin=tls.pin) as transport:
            viewer = await _register(transport)
            await _ticket(transport)
            await transport.reconnect()
            pull = await transport.request(
                "GET", "/api/omega/patterns?since=0", body=None, headers=_bearer(viewer)
            )
            assert pull.status == 200, pull.body
            assert transport.stats.early_sent == 1 and transport.stats.too_early == 0
            assert (transport.stats.handshakes, transport.stats.resumed) == (2, 1)

    asyncio.run(scenario())
    assert _metric(server, "omega_http3_early_requests_total", outcome="answered") == answered + 1
    assert _metric(server, "omega_http3_connections_total", resumed="yes") == resumed + 1


def test_a_push_in_early_data_gets_425_then_goes_after_the_handshake(
    server: Server, tls: SelfSigned
) -> None:
    refused = _metric(server, "omega_http3_early_requests_total", outcome="too_early")

    async def scenario() -> None:
        # A client that sends everything as early data, as RFC 8470 allows.
        async with Http3Transport(_url(server), pin=tls.pin, early_data="all") as transport:
            viewer = await _register(transport)
            await _ticket(transport)
            await transport.reconnect()
            body = _push(viewer, "early")
            answer = await transport.request(
                "POST", "/api/omega/patterns", body=body, headers=_bearer(viewer)
            )
            assert answer.status == 200, answer.body
            assert len(codec.decode(answer.body, expect=PushAck).accepted) == 3
            assert (transport.stats.early_sent, transport.stats.too_early) == (1, 1)

    asyncio.run(scenario())
    assert _metric(server, "omega_http3_early_requests_total", outcome="too_early") == refused + 1


def test_a_server_with_another_key_is_refused_before_any_request(
    server: Server, tls: SelfSigned, tmp_path: Path
) -> None:
    other = self_signed(tmp_path / "other")

    def seen() -> tuple[float, float]:
        return (
            _metric(server, "omega_http3_connections_total", resumed="no"),
            _metric(
                server, "omega_http_requests_total", route="/healthz", method="GET", status="200"
            ),
        )

    before = seen()

    async def scenario() -> None:
        async with Http3Transport(_url(server), pin=other.pin) as transport:
            with pytest.raises(TransportError, match="did not match the pinned key"):
                await transport.request("GET", "/healthz", body=None, headers={})
            assert transport.stats.handshakes == 0 and not transport.has_ticket
        # Without a pin, the self-signed certificate fails the CA check.
        async with Http3Transport(_url(server)) as transport:
            with pytest.raises(TransportError, match="QUIC connection closed"):
                await transport.request("GET", "/healthz", body=None, headers={})

    asyncio.run(scenario())
    # The server never saw a handshake complete, nor a request.
    assert seen() == before


def test_a_device_that_moves_keeps_its_connection(server: Server, tls: SelfSigned) -> None:
    handshakes = _metric(server, "omega_http3_connections_total", resumed="no")

    async def scenario() -> None:
        async with Http3Transport(_url(server), pin=tls.pin) as transport:
            viewer = await _register(transport)
            before = transport.local_port
            moved = await transport.rebind()
            assert moved != before
            pull = await transport.request(
                "GET", "/api/omega/patterns?since=0", body=None, headers=_bearer(viewer)
            )
            assert pull.status == 200
            push = await transport.request(
                "POST", "/api/omega/patterns", body=_push(viewer, "moved"), headers=_bearer(viewer)
            )
            assert push.status == 200
            assert transport.local_port == moved
            assert transport.stats.handshakes == 1

    asyncio.run(scenario())
    assert _metric(server, "omega_http3_connections_total", resumed="no") == handshakes + 1


def test_a_ping_keeps_the_open_connection(server: Server, tls: SelfSigned) -> None:
    """``ping()`` sends nothing with no connection open, and is answered on an open one
    (devices holding a connection between syncs ping it within the idle timeout)."""

    async def scenario() -> None:
        async with Http3Transport(_url(server), pin=tls.pin) as transport:
            assert await transport.ping() is False
            assert transport.stats.datagrams_sent == 0
            await _register(transport)
            sent = transport.stats.datagrams_sent
            assert await transport.ping() is True
            assert transport.stats.datagrams_sent > sent
            assert transport.stats.handshakes == 1

    asyncio.run(scenario())


def test_an_oversized_body_gets_413_and_the_connection_carries_on(
    server: Server, tls: SelfSigned
) -> None:
    labels = {"route": "/api/omega/sync", "method": "POST", "status": "413"}
    by_app = _metric(server, "omega_http_requests_total", **labels)

    async def scenario() -> None:
        async with Http3Transport(_url(server), pin=tls.pin) as transport:
            viewer = await _register(transport)
            big = b"\0" * (64 * 1024 + 1)
            declared = await transport.request(
                "POST", "/api/omega/sync", body=big, headers=_bearer(viewer)
            )
            assert declared.status == 413, declared.body
            assert b"65536 byte limit" in declared.body
            # The refused body no longer counts as in flight: the next body is read.
            small = await transport.request(
                "POST", "/api/omega/sync", body=b"\x01", headers=_bearer(viewer)
            )
            assert small.status == 400, small.body
            ok = await transport.request("GET", "/healthz", body=None, headers={})
            assert ok.status == 200 and transport.stats.handshakes == 1
            # A body that declares no size is counted as it arrives.
            async with _raw(server, tls) as raw:
                status = await raw.request("/api/omega/sync", _bearer(viewer), big)
                assert status == 413
                assert await raw.request("/api/omega/sync", _bearer(viewer), b"\x01") == 400
                assert await raw.request("/healthz", {}, None) == 200

    asyncio.run(scenario())
    # The door refused both before buffering them whole: the app never saw them.
    assert _metric(server, "omega_http_requests_total", **labels) == by_app


def test_unfinished_bodies_are_bounded_per_connection(server: Server, tls: SelfSigned) -> None:
    """A client that never finishes (nor authenticates) its requests cannot make the door
    hold more than one body's cap per connection, however many streams it opens: the
    stream that goes over it gets 503 at once; the connection and others carry on."""

    async def scenario() -> None:
        async with _raw(server, tls) as raw:
            chunk = b"\0" * (40 * 1024)  # under the 64 KiB body cap; two are over it
            streams = [raw.open_body("/api/omega/sync", chunk) for _ in range(2)]
            answers = [raw.answers[stream] for stream in streams]
            async with asyncio.timeout(10):  # packets interleave the streams: either may go over
                await asyncio.wait(answers, return_when=asyncio.FIRST_COMPLETED)
            assert [a.result() for a in answers if a.done()] in ([503], [503, 503])
            assert await raw.request("/healthz", {}, None) == 200

    asyncio.run(scenario())
    assert httpx.get(server.base_url + "/healthz").status_code == 200


def test_the_server_keeps_serving_after_garbage_and_bad_requests(
    server: Server, tls: SelfSigned
) -> None:
    async def garbage() -> ConnectionTerminated | None:
        async with _raw(server, tls) as raw:
            raw.send_garbage()
            async with asyncio.timeout(10):
                await raw.wait_closed()
            return raw.terminated

    async def scenario() -> None:
        terminated = await garbage()
        assert terminated is not None and terminated.error_code >= 0x100  # an H3 error
        async with Http3Transport(_url(server), pin=tls.pin) as transport:
            not_a_path = await transport.request("GET", "healthz", body=None, headers={})
            assert not_a_path.status == 400, not_a_path.body
            teapot = await transport.request("BREW", "/healthz", body=None, headers={})
            assert teapot.status == 405
            viewer = await _register(transport)
            garbled = await transport.request(
                "POST", "/api/omega/patterns", body=b"\x01\xc1\xc1\xc1", headers=_bearer(viewer)
            )
            assert garbled.status == 400
            ok = await transport.request("GET", "/healthz", body=None, headers={})
            assert ok.status == 200

    asyncio.run(scenario())
    assert httpx.get(server.base_url + "/healthz").status_code == 200
    assert "Traceback" not in (server.data_dir / "server.log").read_text()


def test_no_server_is_a_transport_error(tls: SelfSigned) -> None:
    async def scenario() -> None:
        async with Http3Transport(
            "https://127.0.0.1:9", pin=tls.pin, connect_timeout=0.5, timeout=2
        ) as transport:
            with pytest.raises(TransportError):
                await transport.request("POST", "/api/omega/sync", body=b"x", headers={})

    asyncio.run(scenario())
