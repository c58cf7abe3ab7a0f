"""Faults on the wire, for the fault tests and the soak bench: a TCP proxy that resets
connections at chosen byte offsets.

:class:`ResetProxy` listens on loopback and forwards every connection it accepts to an
upstream server, byte for byte, counting the bytes each way: ``"up"`` (client to server:
the requests) and ``"down"`` (server to client: the answers). :meth:`ResetProxy.cut` arms
one reset: once ``after`` more bytes have moved in that direction on a connection, the
proxy forwards exactly those bytes and resets both sides of it — a real TCP RST
(``SO_LINGER`` 0), so the client's next read or write fails with ``ECONNRESET`` and the
server sees the connection torn mid-request or mid-answer, as on a flaky network.
:meth:`ResetProxy.reset_all` resets every open connection at once (a network blip).

It runs on the caller's event loop::

    async with ResetProxy("127.0.0.1", server_port) as proxy:
        proxy.cut("down", after=100)  # the next answer is cut after its 100th byte
        ...                           # talk to proxy.url instead of the server
        assert len(proxy.resets) == 1

A client whose upstream cannot be reached (the server is down) is reset at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

__all__ = ["Cut", "Direction", "Reset", "ResetProxy"]

Direction = Literal["up", "down"]
_CHUNK = 64 * 1024
_LINGER_ZERO = struct.pack("ii", 1, 0)  # close() then sends RST and drops unsent data


@dataclass(slots=True)
class Cut:
    """A reset armed on the proxy: after ``after`` more bytes in ``direction``.

    ``connection`` (numbered from 1 in the order the proxy accepted them) pins it to one
    connection, counting from that connection's first byte. Without one, cuts in a
    direction take turns in the order they were armed: the first goes to the first
    connection that moves bytes that way once it is armed, counting from then; the next
    waits until it has fired. A connection that closes before its cut fired hands the
    cut on to the next connection (counting afresh there).
    """

    direction: Direction
    after: int
    connection: int | None = None
    _bound: tuple[int, int] | None = field(default=None, repr=False)  # (link, bytes then)


@dataclass(frozen=True, slots=True)
class Reset:
    """A reset the proxy made: on which connection, and after how many bytes each way."""

    connection: int
    direction: Direction | None  # the cut that fired; None for reset_all
    up_bytes: int
    down_bytes: int


@dataclass(slots=True)
class _Link:
    """One proxied connection: the client's side and the upstream side."""

    number: int
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    moved: dict[Direction, int] = field(default_factory=lambda: {"up": 0, "down": 0})
    closed: bool = False


class ResetProxy:
    """A byte-for-byte TCP proxy to ``upstream_host:upstream_port`` that resets
    connections when told (see the module docstring)."""

    def __init__(
        self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._cuts: list[Cut] = []
        self._links: dict[int, _Link] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0  # accepted so far
        self.moved: dict[Direction, int] = {"up": 0, "down": 0}
        self.resets: list[Reset] = []

    # -- life cycle ------------------------------------------------------------------
    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._accept, self.host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def aclose(self) -> None:
        """Stop listening and reset every connection still open (not counted in
        :attr:`resets`: that list is of the faults made while running)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self._links.values()):
            self._reset(link, None, record=False)
        # Every link is aborted, so each handler ends on its own (cancelling them would
        # make asyncio's stream callback log the CancelledError).
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    # -- faults ----------------------------------------------------------------------
    def cut(self, direction: Direction, *, after: int, connection: int | None = None) -> Cut:
        """Arm a reset after ``after`` more bytes in ``direction`` (see :class:`Cut`)."""
        if direction not in ("up", "down"):
            raise ValueError(f"direction is 'up' or 'down', got {direction!r}")
        if after < 0:
            raise ValueError(f"after counts bytes, so it is ≥ 0, got {after}")
        armed = Cut(direction, after, connection)
        self._cuts.append(armed)
        return armed

    @property
    def armed(self) -> list[Cut]:
        """Cuts not fired yet."""
        return list(self._cuts)

    def disarm(self) -> list[Cut]:
        """Take back every cut not fired yet; returns them."""
        left, self._cuts = self._cuts, []
        return left

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet closed or reset."""
        return sum(not link.closed for link in self._links.values())

    def reset_all(self) -> int:
        """Reset every open connection now; returns how many."""
        links = [link for link in self._links.values() if not link.closed]
        for link in links:
            self._reset(link, None)
        return len(links)

    # -- forwarding ------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        link = _Link(self.connections, writer)
        self._links[link.number] = link
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                up_reader, upstream = await asyncio.open_connection(*self.upstream)
            except OSError:
                self._reset(link, None, record=False)
                return
            if link.closed:  # reset (reset_all, aclose) while connecting
                upstream.transport.abort()
                return
            link.upstream = upstream
            await asyncio.gather(
                self._pipe(link, "up", reader, upstream),
                self._pipe(link, "down", up_reader, writer),
            )
            self._close(link)
        finally:
            self._tasks.discard(task)
            self._links.pop(link.number, None)

    async def _pipe(
        self,
        link: _Link,
        direction: Direction,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
    ) -> None:
        try:
            while data := await source.read(_CHUNK):
                allowed = self._allowance(link, direction, len(data))
                if allowed is not None:
                    await self._forward(link, direction, sink, data[:allowed])
                    self._reset(link, direction)
                    return
                await self._forward(link, direction, sink, data)
            if not link.closed and sink.can_write_eof():
                sink.write_eof()  # a half-close passes through as one
        except (ConnectionError, OSError):
            self._reset(link, None, record=False)  # one side was reset: so is the other

    async def _forward(
        self, link: _Link, direction: Direction, sink: asyncio.StreamWriter, data: bytes
    ) -> None:
        if data:
            sink.write(data)
            await sink.drain()
        link.moved[direction] += len(data)
        self.moved[direction] += len(data)

    def _allowance(self, link: _Link, direction: Direction, size: int) -> int | None:
        """Bytes of the next ``size`` that may pass before a cut fires (None: all)."""
        for armed in self._live(direction):
            if armed.connection is not None:
                if armed.connection != link.number:
                    continue
                base = 0
            else:
                if armed._bound is None:
                    armed._bound = (link.number, link.moved[direction])
                number, base = armed._bound
                if number != link.number:
                    continue
            sent = link.moved[direction] - base
            if sent + size > armed.after:
                self._cuts.remove(armed)
                return max(0, armed.after - sent)
        return None

    def _live(self, direction: Direction) -> list[Cut]:
        """The cuts that may fire now in ``direction``: every pinned one, and the first
        unpinned one (the others wait their turn)."""
        pinned = [c for c in self._cuts if c.direction == direction and c.connection is not None]
        turn = next(
            (c for c in self._cuts if c.direction == direction and c.connection is None), None
        )
        return pinned if turn is None else [*pinned, turn]

    def _unbind(self, link: _Link) -> None:
        """``link`` is closing: an unpinned cut it held and did not fire waits for the next
        connection (else it could never fire, and the cuts after it never get a turn)."""
        link.closed = True
        for armed in self._cuts:
            if armed._bound is not None and armed._bound[0] == link.number:
                armed._bound = None

    def _reset(self, link: _Link, direction: Direction | None, *, record: bool = True) -> None:
        if link.closed:
            return
        self._unbind(link)
        for writer in (link.client, link.upstream):
            if writer is None:
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
            writer.transport.abort()
        if record:
            self.resets.append(Reset(link.number, direction, link.moved["up"], link.moved["down"]))

    def _close(self, link: _Link) -> None:
        if link.closed:
            return
        self._unbind(link)
        for writer in (link.client, link.upstream):
            if writer is not None:
                writer.close()
