"""A device that knows several endpoints of one service moves on from one that is gone:
a refused connection is retried on the next endpoint at once; a request sent and left
unanswered is not resent (the caller decides), but the next request goes elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from _sync_world import Server

from omega.bench.serving import free_port
from omega.errors import ConfigError, TransportError, UnreachableError
from omega.sync import FailoverTransport, HttpTransport


@contextlib.asynccontextmanager
async def _hang_up() -> AsyncIterator[str]:
    """A real listener that accepts each connection, reads the request and closes without
    answering: a replica dying with the request in hand."""

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.close()

    listener = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        listener.close()
        await listener.wait_closed()


async def _healthz(transport: FailoverTransport) -> int:
    answer = await transport.request("GET", "/healthz", body=None, headers={})
    return answer.status


def test_a_refused_endpoint_is_skipped_within_the_same_request(server: Server) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    async def scenario() -> list[tuple[int, int, int]]:
        async with FailoverTransport.over_http([dead, server.base_url]) as transport:
            seen = []
            for _ in range(2):
                status = await _healthz(transport)
                seen.append((status, transport.current, transport.failovers))
            return seen

    assert asyncio.run(scenario()) == [(200, 1, 1), (200, 1, 1)]  # and it stays there


def test_no_endpoint_reachable_is_an_unreachable_error_naming_each() -> None:
    dead = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]

    async def scenario() -> None:
        async with FailoverTransport.over_http(dead) as transport:
            await _healthz(transport)

    with pytest.raises(UnreachableError, match="no endpoint could be reached") as caught:
        asyncio.run(scenario())
    assert str(caught.value).count("GET /healthz") == 2


def test_a_request_left_unanswered_is_not_resent_but_the_next_goes_elsewhere(
    server: Server,
) -> None:
    async def scenario() -> tuple[type[BaseException], int, int]:
        async with _hang_up() as dying:
            transport = FailoverTransport([HttpTransport(dying), HttpTransport(server.base_url)])
            with pytest.raises(TransportError) as caught:
                await transport.request("GET", "/healthz", body=None, headers={})
            moved_to = transport.current
            answer = await transport.request("GET", "/healthz", body=None, headers={})
            await transport.aclose()
            return type(caught.value), moved_to, answer.status

    kind, moved_to, status = asyncio.run(scenario())
    assert kind is TransportError  # sent: not an UnreachableError, so not resent here
    assert moved_to == 1 and status == 200


def test_a_failover_transport_needs_an_endpoint() -> None:
    with pytest.raises(ConfigError, match="at least one endpoint"):
        FailoverTransport([])
