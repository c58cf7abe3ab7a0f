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

This module opens, reuses and closes connections; one connection's streams, pin check
and counting are ``_h3_connection``'s.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Literal, Self
from urllib.parse import urlsplit

from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.tls import SessionTicket

from omega.errors import ConfigError, TransportError, UnreachableError
from omega.protocol.quic import TOO_EARLY, may_be_early, parse_pin
from omega.sync._h3_connection import ClientProtocol, QuicStats, close_connection
from omega.sync.transport import CONNECT_TIMEOUT, IO_TIMEOUT, Response

__all__ = ["EarlyData", "Http3Transport", "QuicStats"]

#: Which requests go as 0-RTT early data on a resumed connection: the safe reads (the
#: default), every request (the server answers 425 to all but the reads), or none.
EarlyData = Literal["reads", "all", "none"]
#: The socket's receive buffer (the kernel caps it at net.core.rmem_max): a connection
#: carrying many requests at once receives bursts of answers (see the door's).
_UDP_BUFFER_BYTES = 1024 * 1024


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
        self._protocol: ClientProtocol | None = None
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

    async def _handshake(self, protocol: ClientProtocol) -> None:
        try:
            async with asyncio.timeout(self._connect_timeout):
                await asyncio.shield(protocol.handshake)
        except TimeoutError:
            protocol.failure = UnreachableError(
                f"no QUIC handshake with {self.host}:{self.port} in {self._connect_timeout:g} s"
            )
            protocol.close()
            raise protocol.failure from None

    async def _connection(self) -> ClientProtocol:
        async with self._lock:
            if self._protocol is None or not self._protocol.usable:
                spent, self._protocol = self._protocol, None
                if spent is not None:  # closed or failed (a pin that did not match)
                    await close_connection(spent)
                self._protocol = await self._open()
            return self._protocol

    async def _open(self) -> ClientProtocol:
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
            lambda: ClientProtocol(quic, pin=self._pin, stats=self.stats, zero_rtt=zero_rtt),
        )
        # The ClientHello leaves with the first request's early data, or on the next turn
        # of the loop when the request must wait for the handshake.
        protocol.connect(address, transmit=False)
        loop.call_soon(protocol.transmit)
        return protocol

    async def _endpoint(self, family: int, factory: Callable[[], ClientProtocol]) -> ClientProtocol:
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
            await close_connection(protocol)

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
