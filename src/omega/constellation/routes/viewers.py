"""Viewer registry and tokens: register, refresh (single use, rotating), read one's own entry."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from omega.constellation._runtime import runtime_of
from omega.constellation._wire import WireFormat, read_message, reply
from omega.constellation.guards import (
    VIEWER_ROUTE,
    Viewer,
    enforce_rate,
    enforce_registration_rate,
    require_own,
)
from omega.constellation.openapi import body_doc, problem_responses, reply_doc
from omega.constellation.problems import Problem
from omega.errors import AuthError
from omega.protocol.messages import Registration, RegistrationResponse, TokenRefresh
from omega.storage.base import ViewerRecord

__all__ = ["router"]

router = APIRouter(prefix="/api/omega", tags=["viewers"])


@router.post(
    "/viewers",
    status_code=201,
    summary="Register a device; returns its viewer id, access and refresh tokens",
    openapi_extra=body_doc("Registration", required=False),
    responses=reply_doc("RegistrationResponse", 201, "Registered")
    | problem_responses(400, 413, 415, 422, 429, 503),
    response_class=Response,
)
async def register(request: Request) -> Response:
    runtime = runtime_of(request)
    settings = runtime.settings
    enforce_registration_rate(request)
    fmt: WireFormat = "json"
    if request.headers.get("content-length", "0") == "0" and "content-type" not in request.headers:
        registration = Registration()
    else:
        registration, fmt = await read_message(
            request,
            Registration,
            max_bytes=settings.max_body_bytes,
            max_decompressed=settings.max_decompressed_bytes,
        )
    viewer_id = "v_" + secrets.token_urlsafe(16)
    record = ViewerRecord(
        viewer_id=viewer_id,
        region=registration.region,
        device_model=registration.device_model,
        created_at=runtime.clock.now(),
        client_version=registration.client_version,
    )
    await runtime.db(lambda: runtime.storage.create_viewer(record))
    pair = runtime.tokens.issue_pair(viewer_id)
    answer = RegistrationResponse(
        viewer_id=viewer_id,
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )
    return reply(answer, fmt, status=201)


@router.post(
    "/token",
    summary="Trade a refresh token (once) for a new access and refresh token",
    openapi_extra=body_doc("TokenRefresh"),
    responses=reply_doc("RegistrationResponse")
    | problem_responses(400, 401, 413, 415, 422, 429, 503),
    response_class=Response,
)
async def refresh(request: Request) -> Response:
    runtime = runtime_of(request)
    settings = runtime.settings
    body, fmt = await read_message(
        request,
        TokenRefresh,
        max_bytes=settings.max_body_bytes,
        max_decompressed=settings.max_decompressed_bytes,
    )
    verified = runtime.tokens.verify(body.refresh_token, "refresh")
    enforce_rate(runtime, verified.viewer_id)
    viewer = await runtime.db(lambda: runtime.storage.get_viewer(verified.viewer_id))
    if viewer is None:
        raise AuthError("the refresh token's viewer is not registered here")
    first_use = await runtime.db(
        lambda: runtime.storage.use_refresh_token(
            verified.jti, verified.viewer_id, now=runtime.clock.now()
        )
    )
    if not first_use:
        raise AuthError("refresh token already used; register again or use the newest token")
    pair = runtime.tokens.issue_pair(verified.viewer_id)
    answer = RegistrationResponse(
        viewer_id=verified.viewer_id,
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )
    return reply(answer, fmt)


@router.get(
    "/viewers/{viewer_id}",
    summary="Read one's own registry entry",
    responses=problem_responses(*VIEWER_ROUTE, 403, 404),
)
async def get_viewer(viewer_id: str, request: Request, verified: Viewer) -> dict[str, Any]:
    require_own(verified, viewer_id)
    runtime = runtime_of(request)
    record = await runtime.db(lambda: runtime.storage.get_viewer(viewer_id))
    if record is None:
        raise Problem(404, f"viewer {viewer_id} is not registered", slug="no-such-viewer")
    return {
        "viewer_id": record.viewer_id,
        "region": record.region,
        "device_model": record.device_model,
        "created_at": record.created_at,
        "client_version": record.client_version,
    }
