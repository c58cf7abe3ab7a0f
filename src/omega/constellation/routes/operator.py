"""The operator's routes (admin token) that the MCP core tools stand on.

- ``GET /api/omega/admin/codebook``: which codebook devices speak in (404 before one).
- ``POST /api/omega/admin/viewers``: provision a viewer the operator names, for a device
  that cannot attest itself (a test TV, a set-top app): its registry entry and a first
  token pair, installed on the device out of band. Identities made here cost an
  operator's action, as attested ones cost a manufacturer's certificate.
- ``POST /api/omega/admin/announce``: a ``release`` event for the current version on the
  SSE stream (``/api/omega/events``), for everyone or named viewers, so devices that
  listen sync now instead of at their next turn; on PostgreSQL every replica's listeners
  hear it (``omega.constellation.event_bus``), ``listeners`` counts this replica's.
- ``POST /api/omega/admin/prune``: forget live contributions older than an age or below a
  quality floor; the next round releases what is left.
"""

from __future__ import annotations

import re
from typing import Literal, TypeVar

import msgspec
from fastapi import APIRouter, Request
from starlette.responses import Response

from omega.constellation._runtime import runtime_of
from omega.constellation._wire import read_body
from omega.constellation.guards import ADMIN_ROUTE, Admin
from omega.constellation.openapi import json_body_doc, json_reply_doc, problem_responses
from omega.constellation.problems import Problem
from omega.errors import ConflictError, InvalidMessageError
from omega.protocol import codec
from omega.protocol.messages import Registration, RegistrationResponse, ServerEvent
from omega.protocol.validation import validate
from omega.storage.base import ViewerRecord

__all__ = [
    "DOC_TYPES",
    "Announced",
    "Announcement",
    "CodebookSummary",
    "PruneRequest",
    "Pruned",
    "ViewerProvision",
    "router",
]

router = APIRouter(prefix="/api/omega/admin", tags=["management"])

_MAX_DOCUMENT_BYTES = 16 * 1024
#: Viewers one announcement may name (one event each: a listener's queue holds 64).
MAX_ANNOUNCED = 64
_VIEWER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
T = TypeVar("T")


class CodebookSummary(msgspec.Struct, frozen=True, kw_only=True):
    """The current codebook, without its centroids: ``items`` catalog ids it carries."""

    codebook_id: str
    k: int
    dim: int
    sequence: int
    items: int


class ViewerProvision(msgspec.Struct, frozen=True, kw_only=True):
    """A viewer the operator registers: ``viewer_id`` is 1-64 of ``A-Za-z0-9._-``."""

    viewer_id: str
    region: str = "global"
    device_model: str = "unknown"
    client_version: str = "0.1.0"


class Announcement(msgspec.Struct, frozen=True, kw_only=True):
    """Announce the current release to ``viewer_ids`` (empty: every listener)."""

    viewer_ids: list[str] = []
    priority: Literal["normal", "high"] = "normal"


class Announced(msgspec.Struct, frozen=True, kw_only=True):
    """``events`` published for release ``version``, to ``listeners`` connected now."""

    version: int
    events: int
    listeners: int


class PruneRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Forget live contributions not updated within ``max_age_s`` seconds and/or whose
    quality is below ``min_quality`` (0 < it ≤ 1); at least one is needed."""

    min_quality: float | None = None
    max_age_s: float | None = None


class Pruned(msgspec.Struct, frozen=True, kw_only=True):
    """Live patterns dropped for age and for quality, and how many are left."""

    older: int
    weaker: int
    live_patterns: int


#: The documents above, for the OpenAPI components.
DOC_TYPES: list[type[msgspec.Struct]] = [
    CodebookSummary,
    ViewerProvision,
    Announcement,
    Announced,
    PruneRequest,
    Pruned,
]


def _json(body: msgspec.Struct, status: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json")


async def _document(request: Request, kind: type[T], what: str) -> T:
    data = await read_body(request, limit=_MAX_DOCUMENT_BYTES)
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.DecodeError as exc:
        raise Problem(400, f"not {what}: {exc}", slug="bad-request") from None


@router.get(
    "/codebook",
    summary="The current codebook's id, size and sequence (admin)",
    response_class=Response,
    responses=json_reply_doc("CodebookSummary") | problem_responses(*ADMIN_ROUTE, 404),
)
async def codebook_summary(request: Request, _: Admin) -> Response:
    runtime = runtime_of(request)
    codebook = await runtime.db(runtime.codebooks.get)
    if codebook is None:
        raise Problem(404, "no codebook has been published yet", slug="no-codebook")
    summary = CodebookSummary(
        codebook_id=codebook.codebook_id,
        k=codebook.k,
        dim=codebook.dim,
        sequence=codebook.sequence,
        items=len(codebook.item_ids),
    )
    return _json(summary)


@router.post(
    "/viewers",
    summary="Provision a viewer the operator names, with a first token pair (admin)",
    status_code=201,
    response_class=Response,
    openapi_extra=json_body_doc("ViewerProvision"),
    responses=json_reply_doc("RegistrationResponse", 201, "Provisioned")
    | problem_responses(*ADMIN_ROUTE, 400, 409, 413, 422),
)
async def provision_viewer(request: Request, _: Admin) -> Response:
    runtime = runtime_of(request)
    doc = await _document(request, ViewerProvision, "a viewer to provision")
    if not _VIEWER_ID.fullmatch(doc.viewer_id):
        raise Problem(
            422, "viewer_id must be 1-64 characters of A-Za-z0-9._-", slug="invalid-viewer"
        )
    info = Registration(
        device_model=doc.device_model, region=doc.region, client_version=doc.client_version
    )
    try:
        validate(info)
    except InvalidMessageError as exc:
        raise Problem(422, str(exc), slug="invalid-viewer") from None
    record = ViewerRecord(
        viewer_id=doc.viewer_id,
        region=doc.region,
        device_model=doc.device_model,
        created_at=runtime.clock.now(),
        client_version=doc.client_version,
    )
    taken = f"viewer {doc.viewer_id!r} is already registered"
    if await runtime.db(lambda: runtime.storage.get_viewer(doc.viewer_id)) is not None:
        raise Problem(409, taken, slug="viewer-exists")
    try:
        await runtime.db(lambda: runtime.storage.create_viewer(record))
    except ConflictError:  # registered meanwhile
        raise Problem(409, taken, slug="viewer-exists") from None
    pair = runtime.tokens.issue_pair(doc.viewer_id)
    answer = RegistrationResponse(
        viewer_id=doc.viewer_id,
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        release_keys=runtime.sealer.public_keys(),
    )
    return Response(codec.encode_json(answer), status_code=201, media_type="application/json")


@router.post(
    "/announce",
    summary="Announce the current release on the event stream, to all or named viewers (admin)",
    response_class=Response,
    openapi_extra=json_body_doc("Announcement"),
    responses=json_reply_doc("Announced")
    | problem_responses(*ADMIN_ROUTE, 400, 404, 409, 413, 422),
)
async def announce(request: Request, _: Admin) -> Response:
    runtime = runtime_of(request)
    doc = await _document(request, Announcement, "an announcement")
    ids = list(dict.fromkeys(doc.viewer_ids))
    if len(ids) > MAX_ANNOUNCED:
        raise Problem(
            422, f"name at most {MAX_ANNOUNCED} viewers per announcement", slug="too-many"
        )
    unknown = await runtime.db(lambda: [v for v in ids if runtime.storage.get_viewer(v) is None])
    if unknown:
        raise Problem(404, f"no such viewer(s): {', '.join(unknown)}", slug="no-such-viewer")
    version = await runtime.watcher.check()
    if version == 0:
        raise Problem(409, "nothing has been released yet: run a round first", slug="no-release")
    broker = runtime.broker
    for audience in ids or ["all"]:
        data: dict[str, float | int | str] = {"announced": audience, "priority": doc.priority}
        await runtime.events.publish(ServerEvent(kind="release", version=version, data=data))
    return _json(Announced(version=version, events=len(ids) or 1, listeners=broker.subscribers))


@router.post(
    "/prune",
    summary="Forget live contributions older than an age or below a quality floor (admin)",
    response_class=Response,
    openapi_extra=json_body_doc("PruneRequest"),
    responses=json_reply_doc("Pruned") | problem_responses(*ADMIN_ROUTE, 400, 413, 422),
)
async def prune(request: Request, _: Admin) -> Response:
    runtime = runtime_of(request)
    doc = await _document(request, PruneRequest, "a prune request")
    _check_prune(doc)
    storage, now = runtime.storage, runtime.clock.now()
    abandonment = runtime.rounds.federation_config().behaviour_rate == "abandonment"
    older = weaker = 0
    if doc.max_age_s is not None:
        cutoff = now - doc.max_age_s
        older = await runtime.db(lambda: storage.prune_live(updated_before=cutoff))
    if doc.min_quality is not None:
        floor = doc.min_quality
        weaker = await runtime.db(
            lambda: storage.prune_live_quality(min_quality=floor, abandonment=abandonment)
        )
    left = (await runtime.db(storage.stats)).live_patterns
    return _json(Pruned(older=older, weaker=weaker, live_patterns=left))


def _check_prune(doc: PruneRequest) -> None:
    if doc.min_quality is None and doc.max_age_s is None:
        raise Problem(422, "give min_quality, max_age_s or both", slug="invalid-prune")
    if doc.min_quality is not None and not 0.0 < doc.min_quality <= 1.0:
        raise Problem(422, "min_quality must be in (0, 1]", slug="invalid-prune")
    if doc.max_age_s is not None and not 0.0 < doc.max_age_s < 1e12:
        raise Problem(422, "max_age_s must be a positive number of seconds", slug="invalid-prune")
