"""Viewer registry and tokens: register (attested, ``admission``), refresh (single use,
rotating; refused once the device's manufacturer key is revoked), read one's own entry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from omega.constellation._runtime import runtime_of
from omega.constellation._wire import WireFormat, read_message, reply
from omega.constellation.admission import admit
from omega.constellation.guards import (
    VIEWER_ROUTE,
    Viewer,
    enforce_rate,
    enforce_registration_rate,
    require_own,
)
from omega.constellation.openapi import body_doc, problem_responses, reply_doc
from omega.constellation.problems import Problem
from omega.errors import AuthError, ViewerRevokedError
from omega.protocol.messages import Registration, RegistrationResponse, TokenRefresh

__all__ = ["router"]

router = APIRouter(prefix="/api/omega", tags=["viewers"])


@router.post(
    "/viewers",
    status_code=201,
    summary="Register a device (attested: see docs/security.md); returns its viewer id and tokens",
    description=(
        "201: a new viewer. 200: an attested device that registered before gets its viewer "
        "id back with new tokens. 403: no attestation (unless the server allows it), or one "
        "that does not check out. 409: a certificate for a registered device under another "
        "device key (the operator re-keys a device on purpose). 429: over the per-address "
        "or per-manufacturer limit."
    ),
    openapi_extra=body_doc("Registration", required=False),
    responses=reply_doc("RegistrationResponse", 201, "Registered")
    | reply_doc("RegistrationResponse", 200, "Registered before: the same viewer id")
    | problem_responses(400, 403, 409, 413, 415, 422, 429, 503),
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
    admitted = await admit(runtime, registration)
    pair = runtime.tokens.issue_pair(admitted.viewer_id)
    answer = RegistrationResponse(
        viewer_id=admitted.viewer_id,
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        release_keys=runtime.sealer.public_keys(),
    )
    return reply(answer, fmt, status=201 if admitted.new else 200)


@router.post(
    "/token",
    summary="Trade a refresh token (once) for a new access and refresh token",
    openapi_extra=body_doc("TokenRefresh"),
    responses=reply_doc("RegistrationResponse")
    | problem_responses(400, 401, 403, 413, 415, 422, 429, 503),
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
    if viewer.revoked_at is not None:
        raise ViewerRevokedError("the operator revoked this viewer: it gets no new tokens")
    revoked = await runtime.db(lambda: runtime.storage.revoked_key_of(verified.viewer_id))
    if revoked is not None:
        raise AuthError(
            f"this device was attested under manufacturer key {revoked.manufacturer_id}/"
            f"{revoked.key_id}, since revoked: register again with a certificate from a "
            "trusted key"
        )
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
