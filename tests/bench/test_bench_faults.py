"""The resetting proxy on real loopback sockets: bytes pass untouched until a cut, then
both peers see a TCP reset (ECONNRESET) after exactly the bytes the cut allowed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from omega.bench.faults import Reset, ResetProxy

REQUEST = bytes(range(256)) * 4  # 1,024 bytes up
ANSWER = b"answer:" + bytes(range(200)) * 5  # 1,007 bytes down


async def _recv_all(sock: socket.socket, limit: int) -> tuple[bytes, str]:
    """Read until ``limit`` bytes, EOF or reset: the bytes and how it ended."""
    loop = asyncio.get_running_loop()
    got = b""
    try:
        while len(got) < limit:
            chunk = await loop.sock_recv(sock, limit - len(got))
            if not chunk:
                return got, "eof"
            got += chunk
    except ConnectionResetError:
        return got, "reset"
    return got, "complete"


@asynccontextmanager
async def _echo_server(
    seen: list[tuple[bytes, str]],
) -> AsyncIterator[int]:
    """A server that reads one request of ``len(REQUEST)`` bytes, then answers ``ANSWER``;
    records what it received and how its read ended."""
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)

    async def serve() -> None:
        while True:
            conn, _ = await loop.sock_accept(listener)
            conn.setblocking(False)
            got, how = await _recv_all(conn, len(REQUEST))
            seen.append((got, how))
            if how == "complete":
                with contextlib.suppress(OSError):  # the client may be gone
                    await loop.sock_sendall(conn, ANSWER)
            conn.close()

    task = asyncio.create_task(serve())
    try:
        yield listener.getsockname()[1]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        listener.close()


async def _exchange(port: int) -> tuple[bytes, str]:
    """One client round trip through the proxy: send REQUEST, read the answer."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        try:
            await loop.sock_sendall(sock, REQUEST)
        except ConnectionResetError:
            return b"", "reset"
        return await _recv_all(sock, len(ANSWER))
    finally:
        sock.close()


def _run(scenario: Callable[[ResetProxy, list[tuple[bytes, str]]], Awaitable[None]]) -> None:
    async def main() -> None:
        seen: list[tuple[bytes, str]] = []
        async with _echo_server(seen) as port, ResetProxy("127.0.0.1", port) as proxy:
            await scenario(proxy, seen)

    asyncio.run(main())


def test_bytes_pass_untouched_and_are_counted() -> None:
    async def scenario(proxy: ResetProxy, seen: list[tuple[bytes, str]]) -> None:
        assert await _exchange(proxy.port) == (ANSWER, "complete")
        assert seen == [(REQUEST, "complete")]
        assert proxy.moved == {"up": len(REQUEST), "down": len(ANSWER)}
        assert proxy.resets == [] and proxy.connections == 1

    _run(scenario)


@pytest.mark.parametrize("after", [0, 1, 700, len(ANSWER) - 1])
def test_a_cut_answer_stops_after_its_bytes_with_a_reset(after: int) -> None:
    async def scenario(proxy: ResetProxy, seen: list[tuple[bytes, str]]) -> None:
        proxy.cut("down", after=after)
        assert await _exchange(proxy.port) == (ANSWER[:after], "reset")
        assert seen == [(REQUEST, "complete")]  # the server had the whole request
        assert proxy.resets == [Reset(1, "down", len(REQUEST), after)]
        assert proxy.armed == []
        assert await _exchange(proxy.port) == (ANSWER, "complete")  # one cut, one reset

    _run(scenario)


@pytest.mark.parametrize("after", [0, 1, 500, len(REQUEST) - 1])
def test_a_cut_request_reaches_the_server_torn_by_a_reset(after: int) -> None:
    async def scenario(proxy: ResetProxy, seen: list[tuple[bytes, str]]) -> None:
        proxy.cut("up", after=after)
        answer, how = await _exchange(proxy.port)
        assert (answer, how) == (b"", "reset")
        for _ in range(100):  # the server's read ends on the reset, a moment later
            if seen:
                break
            await asyncio.sleep(0.01)
        assert seen == [(REQUEST[:after], "reset")]
        assert proxy.resets == [Reset(1, "up", after, 0)]

    _run(scenario)


def test_a_cut_pinned_to_a_connection_leaves_the_others_alone() -> None:
    async def scenario(proxy: ResetProxy, seen: list[tuple[bytes, str]]) -> None:
        proxy.cut("down", after=10, connection=2)
        assert await _exchange(proxy.port) == (ANSWER, "complete")
        assert await _exchange(proxy.port) == (ANSWER[:10], "reset")
        assert await _exchange(proxy.port) == (ANSWER, "complete")
        assert [r.connection for r in proxy.resets] == [2]

    _run(scenario)


def test_unpinned_cuts_take_turns_one_connection_each() -> None:
    async def scenario(proxy: ResetProxy, seen: list[tuple[bytes, str]]) -> None:
        proxy.cut("down", after=5)
        proxy.cut("down", after=10)
        assert await _exchange(proxy.port) == (ANSWER[:5], "reset")
        assert await _exchange(proxy.port) == (ANSWER[:10], "reset")
        assert await _exchange(proxy.port) == (ANSWER, "complete")
        assert [(r.connection, r.down_bytes) for r in proxy.resets] == [(1, 5), (2, 10)]

    _run(scenario)


def test_a_cut_whose_connection_closes_short_of_it_moves_to_the_next() -> None:
    """A connection that closes before its unpinned cut fired (a short request here)
    hands the cut to the next one, which it then cuts; the cut after it gets its turn."""

    async def scenario(proxy: ResetProxy, seen: list[tuple[bytes, str]]) -> None:
        loop = asyncio.get_running_loop()
        proxy.cut("up", after=500)
        proxy.cut("up", after=100)
        with socket.socket() as short:
            short.setblocking(False)
            await loop.sock_connect(short, ("127.0.0.1", proxy.port))
            await loop.sock_sendall(short, REQUEST[:10])  # 10 bytes, then gone
        for _ in range(500):  # the proxy sees it close a moment later
            if proxy.connections == 1 and proxy.open_connections == 0:
                break
            await asyncio.sleep(0.01)
        assert proxy.open_connections == 0 and proxy.resets == []
        assert await _exchange(proxy.port) == (b"", "reset")
        assert await _exchange(proxy.port) == (b"", "reset")
        assert [(r.connection, r.up_bytes) for r in proxy.resets] == [(2, 500), (3, 100)]
        assert proxy.armed == []

    _run(scenario)


def test_reset_all_tears_every_open_connection() -> None:
    async def scenario(proxy: ResetProxy, seen: list[tuple[bytes, str]]) -> None:
        loop = asyncio.get_running_loop()
        socks = []
        for _ in range(3):
            sock = socket.socket()
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", proxy.port))
            await loop.sock_sendall(sock, REQUEST[:10])  # a request under way
            socks.append(sock)
        while proxy.moved["up"] < 30:
            await asyncio.sleep(0.01)
        assert proxy.reset_all() == 3
        for sock in socks:
            assert await _recv_all(sock, 1) == (b"", "reset")
            sock.close()
        assert [r.direction for r in proxy.resets] == [None, None, None]

    _run(scenario)


def test_a_client_is_reset_while_the_upstream_is_down() -> None:
    async def main() -> None:
        free = socket.create_server(("127.0.0.1", 0))
        port = free.getsockname()[1]
        free.close()  # nothing listens there now
        async with ResetProxy("127.0.0.1", port) as proxy:
            assert await _exchange(proxy.port) == (b"", "reset")

    asyncio.run(main())


def test_bad_cuts_are_refused() -> None:
    proxy = ResetProxy("127.0.0.1", 1)
    with pytest.raises(ValueError, match="direction"):
        proxy.cut("sideways", after=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="≥ 0"):
        proxy.cut("up", after=-1)
