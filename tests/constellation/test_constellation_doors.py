"""The doors' shared path into the app (``call_app``): the same answers as over HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from omega.constellation import Settings, create_app
from omega.constellation.doors import call_app
from omega.constellation.guards import ViewerRoute
from omega.constellation.hot_routes import HotRoutes
from omega.constellation.routes import sync_router
from omega.protocol import BINARY_MEDIA_TYPE, codec
from omega.protocol.messages import (
    PullRequest,
    Registration,
    RegistrationResponse,
    SyncRequest,
    SyncResponse,
)
from omega.sync.transport import AsgiTransport

SYNC = "/api/omega/sync"


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


def test_the_hot_routes_answer_without_the_router(tmp_path: Path) -> None:
    """``HotRoutes`` answers ``POST /api/omega/sync`` itself — the sync and its refusals
    (no token: 401; a body that is no frame: 400), as the whole app answers them — and
    passes anything else on: here to an app that only records that it was reached."""
    app = create_app(_settings(tmp_path))
    routes = [r for r in sync_router.routes if isinstance(r, ViewerRoute)]
    reached: list[str] = []

    async def rest(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    hot = HotRoutes(rest, routes=routes, exception_handlers=app.exception_handlers)

    async def alone(scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = app  # as Starlette sets it, outside the middleware
        await hot(scope, receive, send)

    async def scenario() -> None:
        async with AsgiTransport(app):
            body = codec.encode(Registration(device_model="door-tv", region="eu"))
            made = await call_app(
                app,
                "POST",
                "/api/omega/viewers",
                headers={"content-type": BINARY_MEDIA_TYPE},
                body=body,
            )
            viewer = codec.decode(made.body, expect=RegistrationResponse)
            bearer = {"authorization": f"Bearer {viewer.access_token}"}
            frame = codec.encode(SyncRequest(pull=PullRequest(viewer_id=viewer.viewer_id)))
            binary = {"content-type": BINARY_MEDIA_TYPE, "accept": BINARY_MEDIA_TYPE}
            cases = [
                ({**binary, **bearer}, frame, 200),
                (binary, frame, 401),
                ({**binary, **bearer}, b"not a frame", 400),
            ]
            for headers, payload, status in cases:
                fast = await call_app(alone, "POST", SYNC, headers=headers, body=payload)
                whole = await call_app(app, "POST", SYNC, headers=headers, body=payload)
                assert (fast.status, whole.status) == (status, status), fast.body
                assert fast.header("content-type") == whole.header("content-type")
                if status != 200:  # problems (a sync's answer is sealed anew each time)
                    assert fast.body == whole.body
            assert codec.decode(
                (
                    await call_app(alone, "POST", SYNC, headers={**binary, **bearer}, body=frame)
                ).body,
                expect=SyncResponse,
            )
            assert reached == []
            assert (
                await call_app(alone, "GET", "/api/omega/patterns", headers=bearer)
            ).status == 418
            assert (await call_app(alone, "POST", SYNC + "/", headers=bearer)).status == 418
            assert reached == ["/api/omega/patterns", SYNC + "/"]

    asyncio.run(scenario())
