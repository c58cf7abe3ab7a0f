"""One QUIC connection of :class:`~omega.sync.h3_transport.Http3Transport`: HTTP/3
requests out on their own streams, answers matched back to them; the certificate pin
checked the moment the handshake completes, before a byte of a request is sent; every
UDP datagram counted in :class:`QuicStats`. The transport opens, reuses and closes these.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from aioquic.asyncio.protocol import QuicConnectionProtocol, QuicStreamHandler
from aioquic.h3.connection import ErrorCode, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, QuicEvent
from aioquic.quic.packet import QuicErrorCode
from cryptography.hazmat.primitives import serialization

from omega.errors import TransportError
from omega.sync.quic_acks import ack_with_next_packet, delay_acks, on_stream_data
from omega.sync.transport import Response

__all__ = ["ClientProtocol", "CountingUdp", "QuicStats", "close_connection"]

_BAD_CERTIFICATE = QuicErrorCode.CRYPTO_ERROR + 42  # the TLS alert bad_certificate
_CLOSE_WAIT = 2.0  # seconds close_connection() waits for the close to be acknowledged
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


class CountingUdp(asyncio.DatagramTransport):
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


class ClientProtocol(QuicConnectionProtocol):
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
        self.udp: CountingUdp | None = None
        self.failure: TransportError | None = None

    # -- asyncio ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.udp = CountingUdp(cast(asyncio.DatagramTransport, transport), self._stats)
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


async def close_connection(protocol: ClientProtocol) -> None:
    """Close the connection, wait (briefly) for the close to go out, drop the socket."""
    protocol.close()
    try:
        async with asyncio.timeout(_CLOSE_WAIT):
            await protocol.wait_closed()
    except TimeoutError:
        pass
    if protocol.udp is not None:
        protocol.udp.close()
