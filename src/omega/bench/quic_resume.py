"""``omega bench quic-resume``: a TV's first request on a fresh HTTP/3 connection against
its first request on a resumed one (TLS 1.3 session ticket, 0-RTT), on a real ``omega serve``.

Each repeat, one device (registered attested over HTTP first):

1. opens a connection with no ticket — a full handshake, the certificate checked against
   the pin — and times its first **pull** (``GET /api/omega/patterns``) from opening the
   connection to the answer; closes it;
2. opens one that resumes with the ticket the server sent: the pull leaves as early data
   in the first flight, and is timed the same way;
3. does the same for a first **sync** (``POST /api/omega/sync``, pull only). A POST may
   not ride early data (RFC 8470; the server would answer 425), so on a resumed
   connection it waits for the resumed handshake, which skips the certificate.

On loopback a round trip costs ~0.1 ms: the gain there is the handshake's CPU.
``rtt_ms`` puts a UDP delay line between device and server (half the round trip each
way), where 0-RTT saves a whole round trip. Bytes are UDP payloads both ways, from
opening the connection to the answer (QUIC, TLS and HTTP/3 included).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx

from omega.bench.certs import SelfSigned, self_signed
from omega.bench.loadgen import MANUFACTURER
from omega.bench.server import _server, quic_door_args, trust_manufacturer
from omega.bench.serving import BenchError
from omega.constellation.doors.http3 import PORT_FILE
from omega.errors import InputError
from omega.protocol import BINARY_MEDIA_TYPE, codec
from omega.protocol.attestation import Manufacturer
from omega.protocol.messages import PullRequest, Registration, RegistrationResponse, SyncRequest
from omega.sync.h3_transport import Http3Transport

__all__ = ["run_quic_resume_bench"]

_WARMUP = 3  # pairs run first and not reported (imports and caches on both sides)


class _DelayLine(asyncio.DatagramProtocol):
    """A UDP relay on loopback holding each datagram ``delay`` seconds, for one client at a
    time: what comes from the server goes to the client that spoke last."""

    def __init__(self, server: tuple[str, int], delay: float) -> None:
        self.server = server
        self.delay = delay
        self.client: tuple[str, int] | None = None
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if addr == self.server:
            target = self.client
        else:
            self.client, target = addr, self.server
        if target is not None and self.transport is not None:
            asyncio.get_running_loop().call_later(self.delay, self.transport.sendto, data, target)


@asynccontextmanager
async def _door(port: int, rtt_ms: float) -> AsyncIterator[str]:
    """The URL devices use: the door itself, or a delay line in front of it."""
    if rtt_ms <= 0:
        yield f"https://127.0.0.1:{port}"
        return
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _DelayLine(("127.0.0.1", port), rtt_ms / 2000), local_addr=("127.0.0.1", 0)
    )
    try:
        yield f"https://127.0.0.1:{transport.get_extra_info('sockname')[1]}"
    finally:
        transport.close()


@dataclass
class _Samples:
    ms: list[float] = field(default_factory=list)
    wire: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.ms)
        return {
            "p50_ms": round(statistics.median(ordered), 2),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
            "mean_ms": round(statistics.fmean(ordered), 2),
            "stdev_ms": round(statistics.stdev(ordered), 2) if len(ordered) > 1 else 0.0,
            "min_ms": round(ordered[0], 2),
            "max_ms": round(ordered[-1], 2),
            "wire_bytes": round(statistics.fmean(self.wire)),
        }


Request = Callable[[Http3Transport], Awaitable[int]]


async def _first(transport: Http3Transport, request: Request, samples: _Samples) -> None:
    """Time ``request`` on ``transport``'s next connection, from opening it to the answer."""
    before = transport.stats.wire_bytes
    started = time.perf_counter()
    status = await request(transport)
    samples.ms.append((time.perf_counter() - started) * 1000)
    samples.wire.append(transport.stats.wire_bytes - before)
    if status != 200:
        raise BenchError(f"the request was answered {status}")


async def _pair(url: str, pin: str, request: Request, fresh: _Samples, resumed: _Samples) -> int:
    """One fresh and one resumed first request; how many went as early data."""
    async with Http3Transport(url, pin=pin) as transport:
        await _first(transport, request, fresh)
        async with asyncio.timeout(10):
            while not transport.has_ticket:  # the server sends it just after the handshake
                await asyncio.sleep(0.001)
        await transport.reconnect()
        await _first(transport, request, resumed)
        if transport.stats.resumed != 1:
            raise BenchError("the server did not resume the TLS session")
        return transport.stats.early_sent


def _register(base_url: str, admin_token: str) -> RegistrationResponse:
    maker = Manufacturer.generate(MANUFACTURER, "k1")
    trust_manufacturer(base_url, admin_token, maker)
    body = codec.encode(maker.device("quic-resume-tv", model="bench-tv").attest(Registration()))
    answer = httpx.post(
        base_url + "/api/omega/viewers",
        content=body,
        headers={"Content-Type": BINARY_MEDIA_TYPE},
        timeout=30,
    )
    if answer.status_code != 201:
        raise BenchError(f"registration failed: {answer.status_code} {answer.text}")
    return codec.decode(answer.content, expect=RegistrationResponse)


def _requests(viewer: RegistrationResponse) -> tuple[Request, Request]:
    headers = {"Authorization": f"Bearer {viewer.access_token}", "Accept": BINARY_MEDIA_TYPE}
    sync_body = codec.encode(SyncRequest(pull=PullRequest(viewer_id=viewer.viewer_id)))

    async def pull(transport: Http3Transport) -> int:
        answer = await transport.request(
            "GET", "/api/omega/patterns?since=0", body=None, headers=headers
        )
        return answer.status

    async def sync(transport: Http3Transport) -> int:
        binary = {**headers, "Content-Type": BINARY_MEDIA_TYPE}
        answer = await transport.request("POST", "/api/omega/sync", body=sync_body, headers=binary)
        return answer.status

    return pull, sync


async def _measure(
    url: str, pin: str, viewer: RegistrationResponse, repeats: int
) -> dict[str, Any]:
    pull, sync = _requests(viewer)
    runs = {name: (_Samples(), _Samples()) for name in ("pull", "sync")}
    early = {"pull": 0, "sync": 0}
    for _ in range(_WARMUP):
        for request in (pull, sync):
            await _pair(url, pin, request, _Samples(), _Samples())
    for _ in range(repeats):
        for name, request in (("pull", pull), ("sync", sync)):
            early[name] += await _pair(url, pin, request, *runs[name])
    report: dict[str, Any] = {}
    for name, (fresh, resumed) in runs.items():
        report[name] = {
            "fresh": fresh.summary(),
            "resumed": resumed.summary(),
            "sent_as_early_data": early[name],
            "gain_p50_ms": round(statistics.median(fresh.ms) - statistics.median(resumed.ms), 2),
        }
    return report


def run_quic_resume_bench(*, repeats: int = 30, rtt_ms: float = 0.0) -> dict[str, Any]:
    """Start a server with its HTTP/3 door, measure ``repeats`` fresh/resumed pairs."""
    if repeats < 2 or not 0 <= rtt_ms <= 1000:
        raise InputError("--repeats must be at least 2 and --rtt-ms within 0..1000")
    with tempfile.TemporaryDirectory(prefix="omega-bench-quic-") as tmp:
        data_dir = Path(tmp)
        tls: SelfSigned = self_signed(data_dir / "tls")
        with _server(
            data_dir,
            db_url=None,
            federation_interval=0,
            workers=1,
            rate_limit=100_000,
            door_args=quic_door_args(tls),
        ) as (base_url, _):
            viewer = _register(base_url, (data_dir / "admin-token").read_text().strip())
            port = int((data_dir / PORT_FILE).read_text())

            async def main() -> dict[str, Any]:
                async with _door(port, rtt_ms) as url:
                    return await _measure(url, tls.pin, viewer, repeats)

            measured = asyncio.run(main())
    return {"repeats": repeats, "rtt_ms": rtt_ms, **measured}
