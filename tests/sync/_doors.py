"""One constellation, every door open, in this process: uvicorn (HTTP/1.1) on a loopback
socket, and the gRPC and HTTP/3 doors the app's lifespan opens on free ports — real
servers on real sockets, sharing the test's event loop and its hand-moved clock.

``live_doors`` yields a :class:`Doors`; ``doors.transport(name)`` is the device transport
for one door (``HttpTransport``, ``GrpcTransport`` or ``Http3Transport`` pinned to the
door's self-signed certificate). Tests parametrised over :data:`DOORS` prove the doors
answer alike: same routes, guards, limits and seals behind each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import uvicorn
from _sync_world import ADMIN_TOKEN, CODEBOOK_ID, Tamper, codebook_document, inprocess_settings

from omega.bench.certs import SelfSigned, self_signed
from omega.bench.serving import bound_socket
from omega.clock import ManualClock
from omega.constellation import create_app
from omega.protocol import BINARY_MEDIA_TYPE, codec
from omega.protocol.messages import (
    DayType,
    Pattern,
    PatternContext,
    PushRequest,
    Registration,
    RegistrationResponse,
    TimeBucket,
)
from omega.sync import HttpTransport, Transport
from omega.sync.grpc_transport import GrpcTransport
from omega.sync.h3_transport import Http3Transport

DOORS = ("http", "grpc", "http3")
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Doors:
    app: Any
    clock: ManualClock
    data_dir: Path
    http_url: str
    grpc_address: str
    http3_url: str
    certificate: SelfSigned
    tamper_modes: list[str]

    def transport(self, door: str) -> Transport:
        if door == "http":
            return HttpTransport(self.http_url)
        if door == "grpc":
            return GrpcTransport(self.grpc_address)
        if door == "http3":
            return Http3Transport(self.http3_url, pin=self.certificate.pin)
        raise ValueError(f"no door {door!r}")

    def tamper(self, *modes: str) -> None:
        """Damage the next answers to ``POST /api/omega/sync``, on whichever door."""
        self.tamper_modes.extend(modes)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "constellation.db"


@contextlib.asynccontextmanager
async def live_doors(data_dir: Path, **overrides: Any) -> AsyncIterator[Doors]:
    """The app (settings as the in-process sync tests', plus ``overrides``) behind all three
    doors, the test codebook published; stopped on exit."""
    clock = ManualClock()
    certificate = self_signed(data_dir / "tls")
    settings = inprocess_settings(
        data_dir,
        grpc_port=0,
        quic_cert=certificate.cert,
        quic_key=certificate.key,
        quic_port=0,
        **overrides,
    )
    app = create_app(settings, clock=clock)
    modes: list[str] = []
    # Inside the app, so the gRPC and HTTP/3 doors (which call the app) pass it too.
    app.add_middleware(Tamper, modes=modes)
    config = uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    with bound_socket(0) as sock:
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                if serving.done():
                    serving.result()  # raises what stopped it
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
            doors = Doors(
                app=app,
                clock=clock,
                data_dir=data_dir,
                http_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
                grpc_address=(data_dir / "grpc-address").read_text().strip(),
                http3_url=f"https://127.0.0.1:{(data_dir / 'http3-port').read_text().strip()}",
                certificate=certificate,
                tamper_modes=modes,
            )
            async with HttpTransport(doors.http_url) as admin:
                answer = await admin.request(
                    "POST",
                    "/api/omega/codebook",
                    body=codebook_document(),
                    headers={"Content-Type": "application/json", **ADMIN},
                )
                assert answer.status == 201, answer.body
            yield doors
        finally:
            server.should_exit = True
            await serving


async def register(transport: Transport) -> RegistrationResponse:
    answer = await transport.request(
        "POST",
        "/api/omega/viewers",
        body=codec.encode(Registration(device_model="door-tv", region="eu")),
        headers={"Content-Type": BINARY_MEDIA_TYPE},
    )
    assert answer.status == 201, answer.body
    return codec.decode(answer.body, expect=RegistrationResponse)


def bearer(viewer: RegistrationResponse) -> dict[str, str]:
    return {"Content-Type": BINARY_MEDIA_TYPE, "Authorization": f"Bearer {viewer.access_token}"}


def contextual_patterns(
    cells: range, *, prefix: str, days: tuple[DayType, ...] = ("weekday", "weekend", "any")
) -> list[Pattern]:
    """A preference per cell, time of day and kind of day: distinct patterns (with
    distinct rates), so releases grow big."""
    buckets: tuple[TimeBucket, ...] = ("morning", "afternoon", "evening", "night")
    return [
        Pattern(
            id=f"{prefix}-{cell}-{bucket}-{day}",
            task="preference",
            cells=(cell,),
            context=PatternContext(time_bucket=bucket, day_type=day),
            success_rate=0.75 + 0.005 * (cell + 3 * b + 7 * d),
            support=9 + cell + b + d,
        )
        for cell in cells
        for b, bucket in enumerate(buckets)
        for d, day in enumerate(days)
    ]


async def crowd_releases(
    doors: Doors,
    rounds: list[range],
    *,
    viewers: int = 3,
    days: tuple[DayType, ...] = ("weekday", "weekend", "any"),
) -> int:
    """For each cell range in ``rounds``, ``viewers`` viewers push its patterns and a round
    runs (one release version each), all over HTTP. Returns the release version."""
    async with HttpTransport(doors.http_url) as http:
        crowd = [await register(http) for _ in range(viewers)]
        for n, cells in enumerate(rounds):
            for viewer in crowd:
                push = PushRequest(
                    viewer_id=viewer.viewer_id,
                    batch_id=f"crowd-{n}",
                    codebook_id=CODEBOOK_ID,
                    added=contextual_patterns(cells, prefix=f"r{n}", days=days),
                )
                answer = await http.request(
                    "POST", "/api/omega/patterns", body=codec.encode(push), headers=bearer(viewer)
                )
                assert answer.status == 200, answer.body
            answer = await http.request("POST", "/api/omega/rounds", body=None, headers=ADMIN)
            assert answer.status == 200, answer.body
        answer = await http.request("GET", "/api/omega/stats", body=None, headers=ADMIN)
        version: int = msgspec.json.decode(answer.body)["version"]
    return version
