"""The HTTP/3 door: the constellation's API over QUIC (aioquic), on its own UDP port.

Started in the app's lifespan when ``Settings.quic_cert`` and ``quic_key`` are set
(``omega serve --quic-cert F --quic-key F [--quic-port N]``). Every request is
buffered (at most ``max_body_bytes``: beyond that the door answers 413 itself and stops
reading) and handed to the same FastAPI app as the HTTP door's requests
(:func:`~omega.constellation.doors.asgi.call_app`, with the QUIC peer's address as the
client), so the routes, guards, limits, idempotency and sealing are the app's own.

**0-RTT.** The door issues TLS session tickets and keeps them in a
:class:`TicketStore`; a device that resumes with one may send its first requests as
early data. Each ticket works once (RFC 8446 §8.1: a replayed ClientHello finds its
ticket spent and gets a full handshake, so its early data is never read), and what
early data may ask is :func:`omega.protocol.quic.may_be_early` — safe reads; anything
else gets ``425 Too Early`` without reaching the app, and the client sends it again
after the handshake (RFC 8470).

A malformed HTTP/3 stream closes that one connection (aioquic's H3 layer); an error in
handling one request answers that request with a problem. The server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol, QuicStreamHandler
from aioquic.asyncio.server import QuicServer
from aioquic.h3.connection import H3_ALPN, ErrorCode, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import HandshakeCompleted, QuicEvent, StreamReset
from aioquic.tls import SessionTicket
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from prometheus_client import Counter

from omega.constellation.doors.asgi import AppReply, call_app
from omega.constellation.problems import problem_response
from omega.constellation.settings import Settings
from omega.errors import ConfigError
from omega.protocol.quic import TOO_EARLY, may_be_early, spki_pin
from omega.sync.quic_acks import ack_with_next_packet, delay_acks, on_stream_data

__all__ = [
    "PORT_FILE",
    "UDP_BUFFER_BYTES",
    "TicketStore",
    "bind_udp",
    "load_server_tls",
    "start_http3",
]

log = logging.getLogger("omega.constellation")

#: The file under the data directory holding the UDP port the door listens on, while it
#: listens (``quic_port`` 0 takes any free one: tests and benches read it here).
PORT_FILE = "http3-port"
#: The receive buffer asked for the door's UDP socket (the kernel caps it at
#: net.core.rmem_max). At Linux's default 208 KB the bench's bursts overflowed it while
#: the event loop was busy (the kernel's RcvbufErrors: 5,187 of ~80,000 datagrams over two
#: runs at 50-200 syncs/s), each loss a retransmission timeout and a smaller congestion
#: window; with 4 MB, none.
UDP_BUFFER_BYTES = 4 * 1024 * 1024
#: Connection-specific fields HTTP/3 forbids (RFC 9114 §4.2).
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding"})


class TicketStore:
    """The session tickets this server issued, newest ``capacity`` kept, each usable once.

    aioquic asks :meth:`add` to keep each ticket it issues and :meth:`pop` for the one a
    resuming client names; popping spends it, so a replayed handshake finds nothing and
    falls back to a full one (its early data unread). Memory: about 1 KB a ticket.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._tickets: OrderedDict[bytes, SessionTicket] = OrderedDict()

    def add(self, ticket: SessionTicket) -> None:
        self._tickets[ticket.ticket] = ticket
        while len(self._tickets) > self.capacity:
            self._tickets.popitem(last=False)

    def pop(self, label: bytes) -> SessionTicket | None:
        return self._tickets.pop(label, None)

    def __len__(self) -> int:
        return len(self._tickets)


def load_server_tls(cert: Path, key: Path) -> QuicConfiguration:
    """The QUIC server configuration with ``cert`` (PEM, chain allowed) and its ``key``
    (PEM, unencrypted); ConfigError naming the file when either cannot be used."""
    try:
        certificates = x509.load_pem_x509_certificates(_read(cert, "certificate"))
    except ValueError:
        raise ConfigError(f"the HTTP/3 certificate {cert} is not a PEM certificate") from None
    try:
        private = serialization.load_pem_private_key(_read(key, "key"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(f"the HTTP/3 key {key} is not an unencrypted PEM private key") from None
    if _public(private.public_key()) != _public(certificates[0].public_key()):
        raise ConfigError(f"the HTTP/3 key {key} does not belong to the certificate {cert}")
    configuration = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    configuration.load_cert_chain(cert, key)
    return configuration


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the HTTP/3 {what} {path}: {exc.strerror}") from None


def _public(key: Any) -> bytes:
    data: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


@dataclass(eq=False)
class _Door:
    """What every connection of the door shares: the app, the body cap, the metrics and
    the requests being answered (cancelled when the door closes)."""

    app: Any
    max_body: int
    connections: Counter
    early: Counter
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


@dataclass(eq=False)
class _Request:
    method: str
    target: str
    headers: dict[str, str]
    early: bool
    declared: int = 0  # the body size content-length claimed (0: none, or not a number)
    body: bytearray = field(default_factory=bytearray)
    done: bool = False  # handed to the app or refused: the rest of the stream is ignored


def _problem(status: int, detail: str, slug: str) -> AppReply:
    answer = problem_response(status, detail, slug=slug)
    return AppReply(status=status, headers=dict(answer.headers.items()), body=bytes(answer.body))


def _request_of(headers: list[tuple[bytes, bytes]], *, early: bool) -> _Request:
    """The method, target and regular fields of an HTTP/3 header list (``:authority``
    becomes ``host``; repeated fields are joined as HTTP/1.1 joins them)."""
    pseudo: dict[str, str] = {}
    fields: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name.startswith(":"):
            pseudo[name] = value
        elif name in fields:
            fields[name] += ("; " if name == "cookie" else ", ") + value
        else:
            fields[name] = value
    if ":authority" in pseudo:
        fields["host"] = pseudo[":authority"]  # the request's own authority wins
    # The body's length is what arrived (call_app sets it), never what the client claims
    # (the claim only refuses a body over the cap early); proxy headers mean nothing from
    # a client talking to us directly.
    length = fields.get("content-length", "")
    for name in ("content-length", "forwarded", "x-forwarded-for", "x-forwarded-proto"):
        fields.pop(name, None)
    declared = int(length) if length.isdigit() else 0
    return _Request(pseudo.get(":method", ""), pseudo.get(":path", ""), fields, early, declared)


class _DoorProtocol(QuicConnectionProtocol):
    """One QUIC connection of the door: HTTP/3 framing in, one app call per request."""

    def __init__(
        self, quic: QuicConnection, stream_handler: QuicStreamHandler | None = None, *, door: _Door
    ) -> None:
        super().__init__(quic, stream_handler)
        self._door = door
        self._h3 = H3Connection(quic)
        self._handshake_done = False
        self._requests: dict[int, _Request] = {}
        #: Body bytes held for requests not yet handed to the app, over all streams. The
        #: app's guards (authentication first) see a request only once its body is in, so
        #: this caps what a client that never authenticates can make the door hold: one
        #: body's cap per connection, however many streams it opens (a TV sends one
        #: request at a time; the bench's lanes, 16 small ones).
        self._buffered = 0

    def quic_event_received(self, event: QuicEvent) -> None:
        on_stream_data(self._quic, event, self._loop.time())  # a long body: ACK at once
        if isinstance(event, HandshakeCompleted):
            # What arrives from here on is 1-RTT data; before, it was early data.
            self._handshake_done = True
            delay_acks(self._quic)  # 1-RTT from here on: ACKs ride with the answers
            self._door.connections.labels("yes" if event.session_resumed else "no").inc()
        elif isinstance(event, StreamReset):
            reset = self._requests.pop(event.stream_id, None)
            if reset is not None and not reset.done:
                self._buffered -= len(reset.body)
        for h3_event in self._h3.handle_event(event):
            self._on_h3(h3_event)

    def _on_h3(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived):
            self._on_headers(event)
        elif isinstance(event, DataReceived):
            self._on_data(event)

    def _on_headers(self, event: HeadersReceived) -> None:
        request = self._requests.get(event.stream_id)
        if request is None:  # a new request (a second HEADERS frame is its trailers)
            request = _request_of(event.headers, early=not self._handshake_done)
            self._requests[event.stream_id] = request
            self._check(event.stream_id, request)
        if event.stream_ended:
            self._ended(event.stream_id, request)

    def _on_data(self, event: DataReceived) -> None:
        request = self._requests.get(event.stream_id)
        if request is None:
            return
        if not request.done:
            request.body += event.data
            self._buffered += len(event.data)
            if len(request.body) > self._door.max_body:
                detail = f"body is over the {self._door.max_body} byte limit"
                self._refuse(event.stream_id, request, _problem(413, detail, "too-large"))
            elif self._buffered > self._door.max_body:
                detail = (
                    f"more than {self._door.max_body} bytes of request bodies in flight on "
                    "this connection: send fewer requests at once"
                )
                self._refuse(event.stream_id, request, _problem(503, detail, "busy"))
        if event.stream_ended:
            self._ended(event.stream_id, request)

    def _ended(self, stream_id: int, request: _Request) -> None:
        """The client sent all of it: to the app, unless it was refused (then forgotten)."""
        if request.done:
            self._requests.pop(stream_id, None)
        else:
            self._dispatch(stream_id, request)

    def _check(self, stream_id: int, request: _Request) -> None:
        """Refuse at once what must not reach the app: early data that is not a safe
        read, a target that is not a path, a declared body over the cap."""
        if request.early and not may_be_early(request.method, request.target):
            self._door.early.labels("too_early").inc()
            detail = "sent as 0-RTT early data: send it again once the handshake is complete"
            self._refuse(stream_id, request, _problem(TOO_EARLY, detail, "too-early"))
        elif not request.target.startswith("/"):
            detail = f"the request target must be a path starting with /, got {request.target!r}"
            self._refuse(stream_id, request, _problem(400, detail, "bad-request"))
        elif request.declared > self._door.max_body:
            limit = self._door.max_body
            detail = f"body of {request.declared} bytes is over the {limit} byte limit"
            self._refuse(stream_id, request, _problem(413, detail, "too-large"))

    def _refuse(self, stream_id: int, request: _Request, reply: AppReply) -> None:
        """Answer ``reply`` now and ask the client to stop sending the body (RFC 9114
        §4.1: H3_NO_ERROR, the answer being complete)."""
        self._release(request)
        self._send(stream_id, reply)
        with contextlib.suppress(ValueError):  # the stream's receiving side already closed
            self._quic.stop_stream(stream_id, ErrorCode.H3_NO_ERROR)
        self._transmit_soon()

    def _release(self, request: _Request) -> None:
        """The request is answered or handed on: its body no longer counts as in flight."""
        if not request.done:
            request.done = True
            self._buffered -= len(request.body)

    def _dispatch(self, stream_id: int, request: _Request) -> None:
        self._release(request)
        if request.early:
            self._door.early.labels("answered").inc()
        self._door.spawn(self._answer(stream_id, request))

    async def _answer(self, stream_id: int, request: _Request) -> None:
        peer = self._quic.get_peer_address()
        client = (str(peer[0]), int(peer[1])) if peer is not None else None
        try:
            reply = await call_app(
                self._door.app,
                request.method,
                request.target,
                headers=request.headers,
                body=bytes(request.body),
                client=client,
                http_version="3",
            )
        except Exception:  # the app already logged what it could; never drop the stream
            log.exception("HTTP/3 %s %s failed", request.method, request.target)
            reply = _problem(500, "the server hit an unexpected error", "internal")
        self._requests.pop(stream_id, None)
        self._send(stream_id, reply)
        # Once per turn of the loop: answers finished together share packets and syscalls.
        self._transmit_soon()

    def _send(self, stream_id: int, reply: AppReply) -> None:
        if self._closed.is_set():
            return  # the connection ended while the app was answering
        headers = [(b":status", str(reply.status).encode())]
        headers += [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in reply.headers.items()
            if k not in _HOP_BY_HOP
        ]
        try:
            self._h3.send_headers(stream_id, headers, end_stream=not reply.body)
            if reply.body:
                self._h3.send_data(stream_id, reply.body, end_stream=True)
            ack_with_next_packet(self._quic, self._loop.time())  # omega.sync.quic_acks
        except RuntimeError:  # the client reset the stream meanwhile
            log.debug("HTTP/3 stream %d reset before its answer was sent", stream_id)


def bind_udp(host: str, port: int) -> socket.socket:
    """A UDP socket bound to ``host``:``port``; ConfigError in one sentence if it cannot be."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0][0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
    except OSError as exc:
        raise ConfigError(f"cannot listen for HTTP/3 on {host}: {exc.strerror}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_BUFFER_BYTES)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen for HTTP/3 on udp {host}:{port}: {exc.strerror}"
        ) from None
    return sock


async def start_http3(app: Any, settings: Settings, stack: contextlib.AsyncExitStack) -> str | None:
    """The door starter (``omega.constellation.doors``): listen when a certificate is
    configured; ``stack`` closes the listener, its connections and answers in flight."""
    if settings.quic_cert is None and settings.quic_key is None:
        return None
    if settings.quic_cert is None or settings.quic_key is None:
        raise ConfigError("HTTP/3 needs both a certificate and its key (--quic-cert, --quic-key)")
    configuration = load_server_tls(settings.quic_cert, settings.quic_key)
    door = _door(app, settings, stack)
    tickets = TicketStore(settings.quic_session_tickets)
    sock = bind_udp(settings.quic_host, settings.quic_port)
    transport, server = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: QuicServer(
            configuration=configuration,
            create_protocol=functools.partial(_DoorProtocol, door=door),
            session_ticket_fetcher=tickets.pop,
            session_ticket_handler=tickets.add,
        ),
        sock=sock,
    )
    port = int(transport.get_extra_info("sockname")[1])
    port_file = settings.data_dir / PORT_FILE
    port_file.write_text(f"{port}\n")

    async def close() -> None:
        port_file.unlink(missing_ok=True)
        server.close()
        for task in list(door.tasks):
            task.cancel()
        await asyncio.gather(*door.tasks, return_exceptions=True)

    stack.push_async_callback(close)
    pin = spki_pin(configuration.certificate)
    return f"HTTP/3 on udp://{settings.quic_host}:{port} (certificate pin {pin})"


def _door(app: Any, settings: Settings, stack: contextlib.AsyncExitStack) -> _Door:
    """The shared state, with the door's counters on the app's metrics registry (taken
    off again when the door closes, so a restarted lifespan registers them anew)."""
    registry = app.state.runtime.metrics.registry
    connections = Counter(
        "omega_http3_connections",
        "HTTP/3 connections whose handshake completed, by whether they resumed a session.",
        ["resumed"],
        registry=registry,
    )
    early = Counter(
        "omega_http3_early_requests",
        "Requests that came as 0-RTT early data: answered, or refused with 425.",
        ["outcome"],
        registry=registry,
    )
    stack.callback(registry.unregister, early)
    stack.callback(registry.unregister, connections)
    return _Door(app=app, max_body=settings.max_body_bytes, connections=connections, early=early)
