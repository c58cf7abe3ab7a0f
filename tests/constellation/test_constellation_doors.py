"""The doors' shared path into the app (``call_app``): the same answers as over HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

from omega.constellation import Settings, create_app
from omega.constellation.doors import call_app
from omega.protocol import BINARY_MEDIA_TYPE, codec
from omega.protocol.messages import Registration, RegistrationResponse
from omega.sync.transport import AsgiTransport


def _settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "admin_token": "doors-admin-token-0123",
        "federation_interval": 0,
        "allow_unattested": True,
        "gc_freeze": False,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def test_call_app_answers_as_the_http_door(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path))

    async def scenario() -> None:
        async with AsgiTransport(app) as http:
            for method, target in [("GET", "/healthz"), ("GET", "/api/omega/patterns?since=0")]:
                direct = await call_app(app, method, target, headers={})
                over_http = await http.request(method, target, body=None, headers={})
                assert (direct.status, direct.body) == (over_http.status, over_http.body)
                assert direct.header("content-type") == over_http.header("content-type")
            unknown = await call_app(app, "GET", "/api/omega/patterns?sinse=3", headers={})
            assert unknown.status == 400 and b"sinse" in unknown.body
            body = codec.encode(Registration(device_model="door-tv", region="eu"))
            headers = {"content-type": BINARY_MEDIA_TYPE}
            made = await call_app(app, "POST", "/api/omega/viewers", headers=headers, body=body)
            assert made.status == 201, made.body
            viewer = codec.decode(made.body, expect=RegistrationResponse)
            bearer = {"authorization": f"Bearer {viewer.access_token}"}
            own = await call_app(app, "GET", "/api/omega/patterns?since=0", headers=bearer)
            assert own.status == 200 and own.header("content-type") == "application/json"

    asyncio.run(scenario())


def test_call_app_reports_the_peer_address(tmp_path: Path) -> None:
    """Per-address limits see the door's peer: two registrations a window from one
    address, the third refused, while another address still registers."""
    app = create_app(_settings(tmp_path, registration_rate_limit=2))
    body = codec.encode(Registration(device_model="door-tv", region="eu"))
    headers = {"content-type": BINARY_MEDIA_TYPE}

    async def register(address: str) -> int:
        reply = await call_app(
            app, "POST", "/api/omega/viewers", headers=headers, body=body, client=(address, 5)
        )
        return reply.status

    async def scenario() -> None:
        async with AsgiTransport(app):
            assert [await register("10.0.0.1") for _ in range(3)] == [201, 201, 429]
            assert await register("10.0.0.2") == 201

    asyncio.run(scenario())
