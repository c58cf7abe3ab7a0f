"""The viewer registry for the operator (admin token): ``omega admin viewers …``.

- ``GET /api/omega/admin/viewers?after=ID&limit=N``: a page of viewers by id;
- ``GET /api/omega/admin/viewers/{viewer_id}``: one viewer (404 if unknown);
- ``POST /api/omega/admin/viewers/{viewer_id}/revoke``: revoke it — no new tokens, its
  pushes refused (403 ``viewer-revoked``), its patterns left out of the next round.
  Once: revoking again keeps the first time.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from omega.constellation._runtime import runtime_of
from omega.constellation.guards import ADMIN_ROUTE, Admin
from omega.constellation.openapi import json_reply_doc, problem_responses
from omega.constellation.problems import Problem
from omega.storage.base import ViewerRecord

__all__ = ["DOC_TYPES", "ViewerEntry", "ViewerPage", "router"]

router = APIRouter(prefix="/api/omega/admin", tags=["management"])


class ViewerEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One viewer: ``revoked_at`` is null while in good standing."""

    viewer_id: str
    region: str
    device_model: str
    client_version: str
    created_at: float
    revoked_at: float | None


class ViewerPage(msgspec.Struct, frozen=True, kw_only=True):
    """Viewers by id; ``next_after``: the ``after`` of the next page (null: the last)."""

    viewers: list[ViewerEntry]
    next_after: str | None


DOC_TYPES: list[type[msgspec.Struct]] = [ViewerEntry, ViewerPage]


def _entry(record: ViewerRecord) -> ViewerEntry:
    return ViewerEntry(
        viewer_id=record.viewer_id,
        region=record.region,
        device_model=record.device_model,
        client_version=record.client_version,
        created_at=record.created_at,
        revoked_at=record.revoked_at,
    )


def _json(body: msgspec.Struct) -> Response:
    return Response(msgspec.json.encode(body), media_type="application/json")


def _unknown(viewer_id: str) -> Problem:
    return Problem(404, f"viewer {viewer_id!r} is not registered", slug="no-such-viewer")


@router.get(
    "/viewers",
    summary="A page of registered viewers, by id (admin)",
    response_class=Response,
    responses=json_reply_doc("ViewerPage") | problem_responses(*ADMIN_ROUTE, 400, 422),
)
async def list_viewers(
    request: Request,
    _: Admin,
    after: Annotated[str, Query(max_length=128)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    runtime = runtime_of(request)
    found = await runtime.db(lambda: runtime.storage.list_viewers(after=after, limit=limit))
    more = len(found) == limit
    page = ViewerPage(
        viewers=[_entry(r) for r in found], next_after=found[-1].viewer_id if more else None
    )
    return _json(page)


@router.get(
    "/viewers/{viewer_id}",
    summary="One registered viewer (admin)",
    response_class=Response,
    responses=json_reply_doc("ViewerEntry") | problem_responses(*ADMIN_ROUTE, 404),
)
async def show_viewer(viewer_id: str, request: Request, _: Admin) -> Response:
    runtime = runtime_of(request)
    record = await runtime.db(lambda: runtime.storage.get_viewer(viewer_id))
    if record is None:
        raise _unknown(viewer_id)
    return _json(_entry(record))


@router.post(
    "/viewers/{viewer_id}/revoke",
    summary="Revoke a viewer: no new tokens, pushes refused, left out of rounds (admin)",
    response_class=Response,
    responses=json_reply_doc("ViewerEntry") | problem_responses(*ADMIN_ROUTE, 404),
)
async def revoke_viewer(viewer_id: str, request: Request, _: Admin) -> Response:
    runtime = runtime_of(request)
    now = runtime.clock.now()
    record = await runtime.db(lambda: runtime.storage.revoke_viewer(viewer_id, now=now))
    if record is None:
        raise _unknown(viewer_id)
    return _json(_entry(record))
