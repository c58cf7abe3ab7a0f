"""Push and pull: ``/sync`` does both in one round trip; ``/patterns`` does one each."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from omega.constellation._runtime import Runtime, runtime_of
from omega.constellation._wire import read_message, reply, reply_format
from omega.constellation.distribute import fit_pull, pattern_budget
from omega.constellation.guards import Viewer, require_own
from omega.constellation.ingest import push_digest, review_push
from omega.constellation.problems import Problem
from omega.constellation.routes._bodies import body_doc, reply_doc
from omega.protocol import codec
from omega.protocol.messages import (
    PullRequest,
    PullResponse,
    PushAck,
    PushRequest,
    SyncRequest,
    SyncResponse,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/omega", tags=["sync"])


async def _push(runtime: Runtime, viewer_id: str, push: PushRequest) -> PushAck:
    settings = runtime.settings
    require_own_push(viewer_id, push)
    count = len(push.added) + len(push.updated) + len(push.removed)
    if count > settings.max_patterns_per_batch:
        raise Problem(
            413,
            f"a push carries at most {settings.max_patterns_per_batch} patterns and removals; "
            f"this one has {count}: split it into several batches",
            slug="too-many-patterns",
        )
    storage = runtime.storage
    viewer = await runtime.db(lambda: storage.get_viewer(viewer_id))
    if viewer is None:
        raise Problem(404, f"viewer {viewer_id} is not registered", slug="no-such-viewer")
    codebook = await runtime.db(storage.get_codebook)
    ack = review_push(push, codebook, server_version=runtime.broker.version)
    digest = push_digest(push)
    now = runtime.clock.now()
    stored = await runtime.db(
        lambda: storage.ingest(push, digest=digest, region=viewer.region, ack=ack, now=now)
    )
    if stored is ack:
        runtime.metrics.patterns_ingested.inc(len(ack.accepted))
        runtime.metrics.patterns_rejected.inc(len(ack.rejected))
    return stored


def require_own_push(viewer_id: str, push: PushRequest) -> None:
    if push.viewer_id != viewer_id:
        raise Problem(403, "a viewer may only push its own patterns", slug="not-your-viewer")


async def _pull(runtime: Runtime, pull: PullRequest) -> PullResponse:
    settings = runtime.settings
    max_bytes = min(max(pull.max_bytes, settings.min_pull_bytes), settings.max_pull_bytes)
    limit = pattern_budget(max_bytes, cap=4096)
    delta = await runtime.db(
        lambda: runtime.storage.release_delta(since_version=pull.since_version, limit=limit)
    )
    # The frame is what travels, so the budget is checked on the encoded size.
    fitted = fit_pull(
        delta,
        since_version=pull.since_version,
        max_bytes=max_bytes,
        fetched_limit=limit,
        size_of=lambda response: len(codec.encode(response)),
    )
    pace = runtime.pacer.next_after(more=fitted.more)
    return PullResponse(
        version=fitted.version,
        patterns=fitted.patterns,
        removed=fitted.removed,
        trends=fitted.trends,
        content=fitted.content,
        next_sync_after=pace,
        more=fitted.more,
    )


@router.post(
    "/sync",
    summary="Push new patterns (optional) and pull the consolidated delta, in one round trip",
    openapi_extra=body_doc("SyncRequest"),
    responses=reply_doc("SyncResponse"),
    response_class=Response,
)
async def sync(request: Request, verified: Viewer) -> Response:
    runtime = runtime_of(request)
    settings = runtime.settings
    body, fmt = await read_message(
        request,
        SyncRequest,
        max_bytes=settings.max_body_bytes,
        max_decompressed=settings.max_decompressed_bytes,
    )
    require_own(verified, body.pull.viewer_id)
    ack = await _push(runtime, verified.viewer_id, body.push) if body.push is not None else None
    pulled = await _pull(runtime, body.pull)
    runtime.metrics.syncs.inc()
    return reply(SyncResponse(pull=pulled, ack=ack), fmt)


@router.post(
    "/patterns",
    summary="Push patterns only (idempotent per batch id)",
    openapi_extra=body_doc("PushRequest"),
    responses=reply_doc("PushAck"),
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
    return reply(await _push(runtime, verified.viewer_id, body), fmt)


@router.get(
    "/patterns",
    summary="Consolidated patterns changed since a version, paged by byte budget",
    responses=reply_doc("PullResponse"),
    response_class=Response,
)
async def pull_patterns(
    request: Request,
    verified: Viewer,
    since: int = Query(0, ge=0, description="The version the device already has."),
    max_bytes: int = Query(5120, gt=0, description="Byte budget of the encoded answer."),
) -> Response:
    runtime = runtime_of(request)
    pull = PullRequest(viewer_id=verified.viewer_id, since_version=since, max_bytes=max_bytes)
    return reply(await _pull(runtime, pull), reply_format(request))
