"""HTTP/3 to a constellation's QUIC door (``omega serve --quic-cert …``), over aioquic.

:class:`Http3Transport` implements :class:`~omega.sync.transport.Transport`: one QUIC
connection carries every request as its own stream, and is opened again (resuming the
TLS session) when the server or an idle timeout closed it.

- **0-RTT.** The transport keeps the session ticket the server sends after each
  handshake. The next connection resumes with it and sends safe reads (a pull, the
  codebook, the release keys: :func:`omega.protocol.quic.may_be_early`) in the very first
  flight; a push waits for the handshake. Should a request that went as early data be
  answered ``425 Too Early`` (RFC 8470), it is sent again once the handshake is complete.
  Tickets live in memory: a restarted device starts with a full handshake.
- **Pinning.** ``pin="sha256/<base64>"`` accepts only a server whose certificate holds
  that public key (no CA needed, so a constellation may use a self-signed certificate);
  any other key closes the connection before a byte of a request is sent, with a
  :class:`TransportError` saying the pin did not match. A resumed session needs no
  certificate: its ticket came from a pinned connection and only that server can use it.
  Without a pin the certificate is checked against ``ca`` (a PEM file) or the system's CAs.
- **Migration.** :meth:`Http3Transport.rebind` moves the connection to a new local UDP
  port, as when a TV's address changes; the QUIC connection carries on (RFC 9000 §9)
  with a fresh connection id, without a new handshake.

Every failure to get an answer is a :class:`TransportError`; :attr:`Http3Transport.stats`
counts handshakes, early requests and the UDP bytes on the wire.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, cast
from urllib.parse import urlsplit

from aioquic.asyncio.protocol import QuicConnectionProtocol, QuicStreamHandler
from aioquic.h3.connection import H3_ALPN, ErrorCode, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, QuicEvent
from aioquic.quic.packet import QuicErrorCode
from aioquic.tls import SessionTicket
from cryptography.hazmat.primitives import serialization

from omega.errors import ConfigError, TransportError, UnreachableError
from omega.protocol.quic import TOO_EARLY, may_be_early, parse_pin
from omega.sync.quic_acks import ack_with_next_packet, delay_acks, on_stream_data
from omega.sync.transport import CONNECT_TIMEOUT, IO_TIMEOUT, Response

__all__ = ["EarlyData", "Http3Transport", "QuicStats"]

#: Which requests go as 0-RTT early data on a resumed connection: the safe reads (the
#: default), every request (the server answers 425 to all but the reads), or none.
EarlyData = Literal["reads", "all", "none"]
_BAD_CERTIFICATE = QuicErrorCode.CRYPTO_ERROR + 42  # the TLS alert bad_certificate
_CLOSE_WAIT = 2.0  # seconds aclose() waits for the close to be acknowledged
#: The socket's receive buffer (the kernel caps it at net.core.rmem_max): a connection
#: carrying many requests at once receives bursts of answers (see the door's).
_UDP_BUFFER_BYTES = 1024 * 1024
_HOP_BY_HOP = frozenset({"host", "connection", "keep-alive", "transfer-encoding"})


@dataclass(slots=True)
class QuicStats:
    """What a transport did on the wire. Bytes are UDP payloads (QUIC packets with their
    headers, TLS handshake and AEAD tags); IPv4 adds 28 bytes of IP and UDP headers per
    datagram."""

    handshakes: int = 0  # completed, full or resumed
    resumed: int = 0  # of which resumed a TLS session
    early_sent: int = 0  # requests sent as 0-RTT early data
    too_early: int = 0  # of which answered 425 and sent again after the handshake
    datagrams_sent: int = 0
    datagrams_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0

    @property
    def wire_bytes(self) -> int:
        return self.bytes_sent + self.bytes_received

    @property
    def datagrams(self) -> int:
        return self.datagrams_sent + self.datagrams_received


class _CountingUdp(asyncio.DatagramTransport):
    """The socket's transport, counting what aioquic sends through it."""

    def __init__(self, inner: asyncio.DatagramTransport, stats: QuicStats) -> None:
        super().__init__()
        self.inner = inner
        self._stats = stats

    def sendto(self, data: Any, addr: Any = None) -> None:
        self._stats.datagrams_sent += 1
        self._stats.bytes_sent += len(data)
        self.inner.sendto(data, addr)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.inner.get_extra_info(name, default)

    def close(self) -> None:
        self.inner.close()

    def is_closing(self) -> bool:
        return self.inner.is_closing()

    def abort(self) -> None:
        self.inner.abort()


@dataclass(eq=False)
class _Exchange:
    """One request's answer as it arrives on its stream."""

    future: asyncio.Future[Response]
    early: bool
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)


class _ClientProtocol(QuicConnectionProtocol):
    """One QUIC connection: HTTP/3 requests out, answers matched to their streams."""

    def __init__(
        self,
        quic: QuicConnection,
        stream_handler: QuicStreamHandler | None = None,
        *,
        pin: bytes | None,
        stats: QuicStats,
        zero_rtt: bool,
    ) -> None:
        super().__init__(quic, stream_handler)
        self._h3 = H3Connection(quic)
        self._pin = pin
        self._stats = stats
        self._exchanges: dict[int, _Exchange] = {}
        self.zero_rtt = zero_rtt  # resuming with a ticket that allows early data
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.udp: _CountingUdp | None = None
        self.failure: TransportError | None = None

    # -- asyncio ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.udp = _CountingUdp(cast(asyncio.DatagramTransport, transport), self._stats)
        super().connection_made(self.udp)

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        self._stats.datagrams_received += 1
        self._stats.bytes_received += len(data)
        super().datagram_received(data, addr)

    # -- QUIC and HTTP/3 events ---------------------------------------------------------------
    def quic_event_received(self, event: QuicEvent) -> None:
        on_stream_data(self._quic, event, self._loop.time())  # a long answer: ACK at once
        if isinstance(event, HandshakeCompleted):
            self._handshake_completed(event)
        elif isinstance(event, ConnectionTerminated):
            self._terminated(event)
        for h3_event in self._h3.handle_event(event):
            self._on_h3(h3_event)

    def _handshake_completed(self, event: HandshakeCompleted) -> None:
        # Runs before aioquic sends anything more (our Finished, 1-RTT requests): a key
        # that does not match the pin closes the connection with nothing sent.
        mismatch = None if event.session_resumed else self._pin_mismatch()
        if mismatch is not None:
            self.failure = TransportError(mismatch)
            self._quic.close(error_code=_BAD_CERTIFICATE, reason_phrase="certificate pin mismatch")
            return
        delay_acks(self._quic)  # 1-RTT from here on: ACKs ride with requests
        self._stats.handshakes += 1
        self._stats.resumed += int(event.session_resumed)
        if not self.handshake.done():
            self.handshake.set_result(None)

    def _pin_mismatch(self) -> str | None:
        if self._pin is None:
            return None
        # aioquic keeps the server's certificate only here; it verified the handshake's
        # signature with this very key.
        certificate = self._quic.tls._peer_certificate
        if certificate is None:
            return "the server presented no certificate to check the pin against"
        spki = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if hashlib.sha256(spki).digest() == self._pin:
            return None
        return "the server's certificate did not match the pinned key (certificate pin mismatch)"

    def _terminated(self, event: ConnectionTerminated) -> None:
        if self.failure is None:
            reason = event.reason_phrase or f"error code {event.error_code:#x}"
            self.failure = TransportError(f"the QUIC connection closed: {reason}")
        if not self.handshake.done():
            self.handshake.set_exception(self.failure)
            self.handshake.exception()  # retrieved: nobody may be waiting for it
        for exchange in self._exchanges.values():
            if not exchange.future.done():
                exchange.future.set_exception(self.failure)

    def _on_h3(self, event: H3Event) -> None:
        if not isinstance(event, HeadersReceived | DataReceived):
            return
        exchange = self._exchanges.get(event.stream_id)
        if exchange is None:
            return
        if isinstance(event, HeadersReceived):
            for name, value in event.headers:
                exchange.headers[name.decode("latin-1").lower()] = value.decode("latin-1")
            exchange.status = int(exchange.headers.pop(":status", "0") or 0)
        else:
            exchange.body += event.data
        if event.stream_ended and not exchange.future.done():
            exchange.future.set_result(
                Response(
                    status=exchange.status, headers=exchange.headers, body=bytes(exchange.body)
                )
            )

    # -- requests ----------------------------------------------------------------------------
    @property
    def usable(self) -> bool:
        return self.failure is None and not self._closed.is_set()

    async def exchange(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str], authority: str
    ) -> tuple[Response, bool]:
        """Send one request on a new stream; its answer, and whether it went as early data."""
        if self.failure is not None:
            raise self.failure
        stream_id = self._quic.get_next_available_stream_id()
        early = self.zero_rtt and not self.handshake.done()
        exchange = _Exchange(asyncio.get_running_loop().create_future(), early)
        self._exchanges[stream_id] = exchange
        self._stats.early_sent += int(early)
        try:
            self._h3.send_headers(
                stream_id, _fields(method, path, body, headers, authority), not body
            )
            if body:
                self._h3.send_data(stream_id, body, end_stream=True)
            # The ACK owed for the last answer rides with the request (omega.sync.quic_acks).
            ack_with_next_packet(self._quic, self._loop.time())
            # Once per turn of the loop: requests sent together share packets.
            self._transmit_soon()
            return await exchange.future, early
        except asyncio.CancelledError:  # timed out: tell the server we gave up
            self._quic.reset_stream(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
            self._transmit_soon()
            raise
        finally:
            self._exchanges.pop(stream_id, None)


def _fields(
    method: str, path: str, body: bytes | None, headers: Mapping[str, str], authority: str
) -> list[tuple[bytes, bytes]]:
    fields = [
        (b":method", method.upper().encode("ascii")),
        (b":scheme", b"https"),
        (b":authority", authority.encode("ascii")),
        (b":path", path.encode("latin-1")),
    ]
    names = set()
    for name, value in headers.items():
        lower = name.lower()
        if lower not in _HOP_BY_HOP:
            names.add(lower)
            fields.append((lower.encode("latin-1"), value.encode("latin-1")))
    if body and "content-length" not in names:
        fields.append((b"content-length", str(len(body)).encode("ascii")))
    return fields


def _target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(f"an HTTP/3 server URL looks like https://host:port, got {url!r}")
    try:
        return parts.hostname, parts.port or 443
    except ValueError:
        raise ConfigError(f"the HTTP/3 server URL {url!r} has a bad port") from None


class Http3Transport:
    """HTTP/3 to ``url`` (``https://host:port``), one QUIC connection at a time (see the
    module docstring). ``pin``: ``sha256/<base64>`` of the server's public key; ``ca``: a
    PEM file of certificates to trust instead of the system's (both may be given)."""

    def __init__(
        self,
        url: str,
        *,
        pin: str | None = None,
        ca: Path | str | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        timeout: float = IO_TIMEOUT,
        early_data: EarlyData = "reads",
    ) -> None:
        self.host, self.port = _target(url)
        self.url = url.rstrip("/")
        self._authority = (
            f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        )
        self._pin = parse_pin(pin) if pin is not None else None
        self._ca = Path(ca) if ca is not None else None
        if self._ca is not None and not self._ca.is_file():
            raise ConfigError(f"the CA file {self._ca} does not exist")
        if early_data not in ("reads", "all", "none"):
            raise ConfigError(f"early_data is 'reads', 'all' or 'none', got {early_data!r}")
        self._early_data = early_data
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._ticket: SessionTicket | None = None
        self._protocol: _ClientProtocol | None = None
        self._lock = asyncio.Lock()
        self.stats = QuicStats()

    @property
    def has_ticket(self) -> bool:
        """Whether the next connection can resume a TLS session (and send early data)."""
        return self._ticket is not None

    @property
    def local_port(self) -> int | None:
        """The UDP port this side of the current connection uses, if one is open."""
        protocol = self._protocol
        if protocol is None or protocol.udp is None:
            return None
        return int(protocol.udp.get_extra_info("sockname")[1])

    async def request(
        self, method: str, path: str, *, body: bytes | None, headers: Mapping[str, str]
    ) -> Response:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._request(method, path, body, headers)
        except TimeoutError:
            protocol = self._protocol
            if protocol is not None and not protocol.handshake.done():
                # No handshake, so nothing but a safe read (early data) left: another
                # endpoint of the service may be tried (FailoverTransport).
                raise UnreachableError(f"{method} {path}: no QUIC handshake") from None
            raise TransportError(f"{method} {path}: timed out over HTTP/3") from None
        except TransportError as exc:  # the same kind: an unreachable server stays one
            raise type(exc)(f"{method} {path}: {exc}") from None

    async def _request(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> Response:
        protocol = await self._connection()
        early_ok = self._early_data == "all" or (
            self._early_data == "reads" and may_be_early(method, path)
        )
        if not early_ok:
            await self._handshake(protocol)
        answer, early = await protocol.exchange(method, path, body, headers, self._authority)
        if early and answer.status == TOO_EARLY:
            # RFC 8470 §5.2: the server would not act on it as early data; send it again.
            self.stats.too_early += 1
            await self._handshake(protocol)
            answer, _ = await protocol.exchange(method, path, body, headers, self._authority)
        return answer

    async def ping(self) -> bool:
        """Keep the open connection alive: one QUIC PING, acknowledged within the I/O
        timeout (TransportError if not). False: no connection is open, nothing sent.

        A connection with no packets for the idle timeout (aioquic's 60 s, on both sides)
        is closed; a device that holds one open between syncs pings more often."""
        protocol = self._protocol
        if protocol is None or not protocol.usable:
            return False
        try:
            async with asyncio.timeout(self._timeout):
                await protocol.ping()
        except TimeoutError:
            raise TransportError(f"no answer to a QUIC PING in {self._timeout:g} s") from None
        return True

    async def _handshake(self, protocol: _ClientProtocol) -> None:
        try:
            async with asyncio.timeout(self._connect_timeout):
                await asyncio.shield(protocol.handshake)
        except TimeoutError:
            protocol.failure = UnreachableError(
                f"no QUIC handshake with {self.host}:{self.port} in {self._connect_timeout:g} s"
            )
            protocol.close()
            raise protocol.failure from None

    async def _connection(self) -> _ClientProtocol:
        async with self._lock:
            if self._protocol is None or not self._protocol.usable:
                spent, self._protocol = self._protocol, None
                if spent is not None:  # closed or failed (a pin that did not match)
                    await _close(spent)
                self._protocol = await self._open()
            return self._protocol

    async def _open(self) -> _ClientProtocol:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise UnreachableError(f"cannot resolve {self.host}: {exc.strerror or exc}") from None
        family, address = infos[0][0], infos[0][4]
        ticket, self._ticket = self._ticket, None  # the server takes each ticket once
        quic = QuicConnection(
            configuration=self._configuration(ticket), session_ticket_handler=self._keep
        )
        zero_rtt = ticket is not None and ticket.max_early_data_size is not None
        protocol = await self._endpoint(
            family,
            lambda: _ClientProtocol(quic, pin=self._pin, stats=self.stats, zero_rtt=zero_rtt),
        )
        # The ClientHello leaves with the first request's early data, or on the next turn
        # of the loop when the request must wait for the handshake.
        protocol.connect(address, transmit=False)
        loop.call_soon(protocol.transmit)
        return protocol

    async def _endpoint(
        self, family: int, factory: Callable[[], _ClientProtocol]
    ) -> _ClientProtocol:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _UDP_BUFFER_BYTES)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            _, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
                factory, sock=sock
            )
        except OSError as exc:
            sock.close()
            raise TransportError(f"cannot open a UDP socket: {exc.strerror}") from None
        return protocol

    def _configuration(self, ticket: SessionTicket | None) -> QuicConfiguration:
        configuration = QuicConfiguration(
            is_client=True, alpn_protocols=H3_ALPN, server_name=self.host, session_ticket=ticket
        )
        if self._pin is not None:
            # The pin replaces the CA check, unless a CA file was given too.
            configuration.verify_mode = ssl.CERT_REQUIRED if self._ca else ssl.CERT_NONE
        if self._ca is not None:
            configuration.load_verify_locations(cafile=str(self._ca))
        return configuration

    def _keep(self, ticket: SessionTicket) -> None:
        self._ticket = ticket

    async def rebind(self) -> int:
        """Move the open connection to a new local UDP port (as a device whose address
        changed) and switch to a fresh connection id; returns the new port. The next
        request validates the new path and carries on on the same connection."""
        protocol = self._protocol
        if protocol is None or not protocol.usable or protocol.udp is None:
            raise TransportError("no open HTTP/3 connection to move")
        old = protocol.udp
        family = old.get_extra_info("socket").family
        await self._endpoint(family, lambda: protocol)
        old.close()
        protocol.change_connection_id()
        port = self.local_port
        assert port is not None
        return port

    async def reconnect(self) -> None:
        """Close the connection; the next request opens a new one, resuming the session
        (with early data) if the server sent a ticket."""
        async with self._lock:
            protocol, self._protocol = self._protocol, None
        if protocol is not None:
            await _close(protocol)

    async def aclose(self) -> None:
        await self.reconnect()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _close(protocol: _ClientProtocol) -> None:
    """Close the connection, wait (briefly) for the close to go out, drop the socket."""
    protocol.close()
    try:
        async with asyncio.timeout(_CLOSE_WAIT):
            await protocol.wait_closed()
    except TimeoutError:
        pass
    if protocol.udp is not None:
        protocol.udp.close()
