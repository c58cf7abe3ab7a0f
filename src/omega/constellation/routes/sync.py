"""Push and pull: ``/sync`` does both in one round trip; ``/patterns`` does one each.

Binary answers that carry a release are sealed with the release key (``sealing``):
``/sync`` answers to the request's exact bytes, ``GET /patterns`` answers unbound (a
cache may serve an older one, never a forged one)."""

from __future__ import annotations

import msgspec
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from omega.constellation._runtime import Runtime, runtime_of
from omega.constellation._wire import read_message, read_request, reply, reply_format, sealed_reply
from omega.constellation.guards import VIEWER_ROUTE, Viewer, ViewerRoute, require_own
from omega.constellation.openapi import body_doc, problem_responses, reply_doc
from omega.protocol import MAX_PULL_BYTES, MAX_VERSION, signing
from omega.protocol.messages import (
    PullRequest,
    PullResponse,
    PushRequest,
    SyncRequest,
    SyncResponse,
)

__all__ = ["router"]

#: The two viewer writes run their guards directly (``ViewerRoute``); the read with query
#: parameters is an ordinary route, added after them.
router = APIRouter(prefix="/api/omega", tags=["sync"], route_class=ViewerRoute)
_reads = APIRouter()  # tagged "sync" by the router it joins


def _paced(runtime: Runtime, fitted: PullResponse) -> PullResponse:
    pace = runtime.pacer.next_after(more=fitted.more)
    return msgspec.structs.replace(fitted, next_sync_after=pace)


@router.post(
    "/sync",
    summary="Push new patterns (optional) and pull the consolidated delta, in one round trip",
    openapi_extra=body_doc("SyncRequest"),
    responses=reply_doc("SyncResponse")
    | problem_responses(*VIEWER_ROUTE, 400, 403, 404, 413, 415, 422),
    response_class=Response,
)
async def sync(request: Request, verified: Viewer) -> Response:
    runtime = runtime_of(request)
    settings = runtime.settings
    body, fmt, digest = await read_request(
        request,
        SyncRequest,
        max_bytes=settings.max_body_bytes,
        max_decompressed=settings.max_decompressed_bytes,
    )
    require_own(verified, body.pull.viewer_id)
    ack, fitted = await runtime.exchange.sync(
        verified.viewer_id, body.push, body.pull, server_version=runtime.broker.version
    )
    runtime.metrics.syncs.inc()
    answer = SyncResponse(pull=_paced(runtime, fitted), ack=ack)
    return sealed_reply(
        answer, fmt, sealer=runtime.sealer, request=digest, trusted=body.release_kids
    )


@router.post(
    "/patterns",
    summary="Push patterns only (idempotent per batch id)",
    openapi_extra=body_doc("PushRequest"),
    responses=reply_doc("PushAck") | problem_responses(*VIEWER_ROUTE, 400, 403, 404, 413, 415, 422),
    response_class=Response,
)
async def push_patterns(request: Request, verified: Viewer) -> Response:
    runtime = runtime_of(request)
    settings = runtime.settings
    body, fmt = await read_message(
        request,
        PushRequest,
        max_bytes=settings.max_body_bytes,
        max_decompressed=settings.max_decompressed_bytes,
    )
    version = runtime.broker.version
    ack = await runtime.exchange.push_async(verified.viewer_id, body, server_version=version)
    return reply(ack, fmt)


@_reads.get(
    "/patterns",
    summary="Consolidated patterns changed since a version, paged by byte budget",
    responses=reply_doc("PullResponse") | problem_responses(*VIEWER_ROUTE, 400),
    response_class=Response,
)
async def pull_patterns(
    request: Request,
    verified: Viewer,
    since: int = Query(0, ge=0, le=MAX_VERSION, description="The version the device already has."),
    max_bytes: int = Query(
        5120, gt=0, le=MAX_PULL_BYTES, description="Byte budget of the encoded answer."
    ),
) -> Response:
    runtime = runtime_of(request)
    pull = PullRequest(viewer_id=verified.viewer_id, since_version=since, max_bytes=max_bytes)
    fitted = await runtime.exchange.pull_async(pull)
    answer = _paced(runtime, fitted)
    return sealed_reply(
        answer, reply_format(request), sealer=runtime.sealer, request=signing.UNBOUND
    )


router.include_router(_reads)
