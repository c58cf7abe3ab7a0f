"""Co-watch for TVs (``docs/cowatch.md``): what to seal reports to, and the second step of
the OPRF.

- ``GET /api/omega/cowatch`` — a viewer: :class:`CowatchInfo` (JSON);
- ``POST /api/omega/cowatch/oprf`` — a viewer: blinded points (already times the
  helper's key) times this server's key, at most ``cowatch_per_epoch`` per TV per epoch
  (429 past it, with Retry-After: the seconds to the next epoch; 422 for a point not in
  the group); a point the TV had evaluated this epoch is answered again free (a retried
  request). msgpack in and out.

Reports themselves never come here: a TV sends them to the helper, which hands them on
shuffled and without the TV's identity.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from fastapi import APIRouter, Request
from starlette.responses import Response

from omega.constellation._runtime import runtime_of
from omega.constellation._wire import read_body
from omega.constellation.guards import VIEWER_ROUTE, Viewer
from omega.constellation.openapi import (
    json_reply_doc,
    media_body_doc,
    media_reply_doc,
    problem_responses,
)
from omega.constellation.problems import Problem
from omega.errors import InputError
from omega.protocol import oprf
from omega.protocol.aggregation import MSGPACK_MEDIA_TYPE
from omega.protocol.cowatch_wire import CowatchInfo, OprfPoints, OprfResponse
from omega.storage.cowatch import OprfOverBudget

__all__ = ["DOC_TYPES", "router"]

router = APIRouter(prefix="/api/omega/cowatch", tags=["sync"])
#: The messages these routes document (added to the app's OpenAPI components).
DOC_TYPES: list[Any] = [CowatchInfo, OprfPoints, OprfResponse]
_MAX_BODY = 64 * 1024


@router.get(
    "",
    summary="The key TVs seal co-watch reports to, and the rules",
    response_class=Response,
    responses=json_reply_doc("CowatchInfo") | problem_responses(*VIEWER_ROUTE),
)
async def info(request: Request, _: Viewer) -> Response:
    runtime = runtime_of(request)
    keys = await runtime.db(runtime.storage.cowatch.keys)
    public = X25519PrivateKey.from_private_bytes(keys.hpke_key).public_key().public_bytes_raw()
    settings = runtime.settings
    doc = CowatchInfo(
        leader_key=public,
        threshold=settings.cowatch_threshold,
        per_epoch=settings.cowatch_per_epoch,
        epoch_s=settings.cowatch_epoch_s,
    )
    return Response(msgspec.json.encode(doc), media_type="application/json")


@router.post(
    "/oprf",
    summary="Second step of the co-watch OPRF (per-TV bound per epoch)",
    response_class=Response,
    openapi_extra=media_body_doc(MSGPACK_MEDIA_TYPE, "OprfPoints"),
    responses=media_reply_doc(MSGPACK_MEDIA_TYPE, "OprfResponse")
    | problem_responses(*VIEWER_ROUTE, 400, 413, 415, 422, 429),
)
async def evaluate(request: Request, verified: Viewer) -> Response:
    runtime = runtime_of(request)
    if request.headers.get("content-type", "").split(";")[0].strip() != MSGPACK_MEDIA_TYPE:
        raise Problem(415, f"send {MSGPACK_MEDIA_TYPE}", slug="unsupported-media-type")
    body = await read_body(request, limit=_MAX_BODY)
    try:
        asked = msgspec.msgpack.decode(body, type=OprfPoints)
    except msgspec.DecodeError as exc:
        raise Problem(400, f"malformed OprfPoints: {exc}", slug="bad-message") from None
    settings = runtime.settings
    epoch = int((runtime.cowatch_clock or runtime.clock).now() // settings.cowatch_epoch_s)
    cowatch = runtime.storage.cowatch

    def work() -> OprfResponse:
        key = cowatch.keys().oprf_key
        points = [oprf.evaluate(key, p) for p in asked.points]  # refuse bad points first
        cowatch.charge_oprf(
            verified.viewer_id, epoch=epoch, points=asked.points, bound=settings.cowatch_per_epoch
        )
        return OprfResponse(points=points)

    try:
        answer = await runtime.db(work)
    except OprfOverBudget as exc:
        wait = settings.cowatch_epoch_s - runtime.clock.now() % settings.cowatch_epoch_s
        headers = {"Retry-After": str(max(1, math.ceil(wait)))}
        raise Problem(429, str(exc), slug="cowatch-over-budget", headers=headers) from None
    except InputError as exc:  # well-formed, but a point not in the group
        raise Problem(422, str(exc), slug="bad-point") from None
    return Response(msgspec.msgpack.encode(answer), media_type=MSGPACK_MEDIA_TYPE)
