"""Management (admin token): codebook, stats, rounds, key rotation.

Viewers may read the codebook (they map content to its cells); it comes sealed with the
release key, as releases do. Anyone may read the release keys' public halves.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from omega.constellation._runtime import Runtime, runtime_of
from omega.constellation._wire import read_body
from omega.constellation.guards import ADMIN_ROUTE, VIEWER_ROUTE, Admin, Viewer
from omega.constellation.openapi import (
    json_body_doc,
    json_reply_doc,
    problem_responses,
)
from omega.constellation.problems import Problem
from omega.errors import ConfigError
from omega.protocol import codec, signing
from omega.protocol.validation import MAX_CELL, MAX_ID_LENGTH, MAX_VECTOR_DIM
from omega.storage.base import Codebook, StorageStats

__all__ = ["CodebookDocument", "CodebookPublished", "router", "stats_document"]

router = APIRouter(prefix="/api/omega", tags=["management"])

#: A codebook is public catalog data and much larger than any device message.
_MAX_CODEBOOK_BYTES = 64 * 1024 * 1024
_MAX_ITEMS = 2_000_000


class CodebookDocument(msgspec.Struct, frozen=True, kw_only=True):
    """A codebook on the wire (JSON; ``centroids_f16`` in base64: k*dim little-endian f16).

    ``item_ids``: the catalog's public item ids, the domain of popularity reports.
    ``sequence``: its place in the order of publications, higher for each later one.
    ``seal``: the release key's seal over ``signing.codebook_digest`` of the rest.
    (``sequence`` and ``seal`` are set by the server on the way out; ignored on the way
    in.)"""

    codebook_id: str
    dim: int
    k: int
    centroids_f16: bytes
    item_ids: list[str] = []
    sequence: int = 0
    seal: signing.Seal | None = None


def _checked(doc: CodebookDocument) -> Codebook:
    if not 1 <= len(doc.codebook_id) <= 128:
        raise Problem(422, "codebook_id must be 1..128 characters", slug="invalid-codebook")
    if not 1 <= doc.dim <= MAX_VECTOR_DIM or not 1 <= doc.k <= MAX_CELL:
        raise Problem(
            422, f"need 1 ≤ dim ≤ {MAX_VECTOR_DIM} and 1 ≤ k ≤ {MAX_CELL}", slug="invalid-codebook"
        )
    if len(doc.centroids_f16) != doc.k * doc.dim * 2:
        raise Problem(
            422,
            f"centroids_f16 holds {len(doc.centroids_f16)} bytes; k*dim*2 = {doc.k * doc.dim * 2}",
            slug="invalid-codebook",
        )
    centroids = np.frombuffer(doc.centroids_f16, dtype="<f2")
    if not np.all(np.isfinite(centroids)):
        raise Problem(422, "centroids must be finite numbers", slug="invalid-codebook")
    if len(doc.item_ids) > _MAX_ITEMS or len(set(doc.item_ids)) != len(doc.item_ids):
        raise Problem(
            422, f"item_ids must be at most {_MAX_ITEMS} distinct ids", slug="invalid-codebook"
        )
    if not all(1 <= len(i) <= MAX_ID_LENGTH for i in doc.item_ids):
        raise Problem(
            422, f"each item id must be 1..{MAX_ID_LENGTH} characters", slug="invalid-codebook"
        )
    return Codebook(
        codebook_id=doc.codebook_id,
        dim=doc.dim,
        centroids_f16=doc.centroids_f16,
        k=doc.k,
        item_ids=tuple(doc.item_ids),
    )


class CodebookPublished(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a published codebook: ``sequence``, its place in the order of
    publications (devices refuse a codebook older than the one they hold)."""

    codebook_id: str
    k: int
    dim: int
    sequence: int


@router.post(
    "/codebook",
    summary="Publish a new codebook (admin)",
    status_code=201,
    response_class=Response,
    openapi_extra=json_body_doc("CodebookDocument"),
    responses=json_reply_doc("CodebookPublished", 201, "Published")
    | problem_responses(*ADMIN_ROUTE, 400, 413, 422),
)
async def put_codebook(request: Request, _: Admin) -> Response:
    runtime = runtime_of(request)
    data = await read_body(request, limit=_MAX_CODEBOOK_BYTES)
    try:
        doc: CodebookDocument = codec.read_json(data, CodebookDocument)
    except msgspec.DecodeError as exc:
        raise Problem(400, f"not a codebook document: {exc}", slug="bad-request") from None
    codebook = _checked(doc)
    stored = await runtime.db(lambda: runtime.codebooks.put(codebook))
    body = CodebookPublished(
        codebook_id=stored.codebook_id, k=stored.k, dim=stored.dim, sequence=stored.sequence
    )
    return Response(msgspec.json.encode(body), status_code=201, media_type="application/json")


@router.get(
    "/codebook",
    summary="The current codebook (viewers)",
    response_class=Response,
    responses=json_reply_doc("CodebookDocument") | problem_responses(*VIEWER_ROUTE, 404),
)
async def get_codebook(request: Request, _: Viewer) -> Response:
    runtime = runtime_of(request)
    codebook = await runtime.db(runtime.codebooks.get)
    if codebook is None:
        raise Problem(404, "no codebook has been published yet", slug="no-codebook")
    digest = signing.codebook_digest(
        codebook.codebook_id,
        codebook.dim,
        codebook.k,
        codebook.centroids_f16,
        codebook.item_ids,
        sequence=codebook.sequence,
    )
    doc = CodebookDocument(
        codebook_id=codebook.codebook_id,
        dim=codebook.dim,
        k=codebook.k,
        centroids_f16=codebook.centroids_f16,
        item_ids=list(codebook.item_ids),
        sequence=codebook.sequence,
        seal=runtime.sealer.seal_document(digest),
    )
    return Response(msgspec.json.encode(doc), media_type="application/json")


@router.get(
    "/stats",
    summary="Counts and the current release version (admin)",
    responses=problem_responses(*ADMIN_ROUTE),
)
async def stats(request: Request, _: Admin) -> dict[str, Any]:
    runtime = runtime_of(request)
    counts = stats_document(runtime, await runtime.db(runtime.storage.stats))
    return {**counts, "cowatch_dp": await runtime.db(lambda: _cowatch_dp(runtime))}


def _cowatch_dp(runtime: Runtime) -> dict[str, Any] | None:
    """Central DP on released co-watch counts (docs/cowatch.md): ε and δ per release while
    it is in effect (None: off), what the releases so far spent together (basic
    composition), and the folds a private release still owes (above 0 after a release
    failed; the next round retries it). None when it is off and never spent anything."""
    on = runtime.settings.cowatch_dp_on
    store = runtime.storage.cowatch
    ledger, owed = store.privacy_ledger(), store.unreleased_folds()
    if not on and not ledger.releases and not owed:
        return None
    return {
        "epsilon_per_release": runtime.settings.cowatch_dp_epsilon if on else None,
        "delta_per_release": runtime.settings.cowatch_dp_delta if on else None,
        "releases": ledger.releases,
        "epsilon_spent": ledger.epsilon,
        "delta_spent": ledger.delta,
        "unreleased_folds": owed,
    }


def stats_document(runtime: Runtime, s: StorageStats) -> dict[str, Any]:
    """``GET /api/omega/stats``'s answer (the dashboard's tiles show the same)."""
    return {
        "viewers": s.viewers,
        "pending_contributions": s.pending_contributions,
        "live_patterns": s.live_patterns,
        "released_patterns": s.released_patterns,
        "version": s.version,
        "event_subscribers": runtime.broker.subscribers,
        "sync_rate_per_s": runtime.pacer.rate(),
    }


@router.post(
    "/rounds",
    summary="Run one federation round now (admin)",
    responses=problem_responses(*ADMIN_ROUTE),
)
async def run_round_now(request: Request, _: Admin) -> dict[str, Any]:
    return await runtime_of(request).rounds.run_once()


@router.post(
    "/keys/rotate",
    summary="Start signing with a new key; old ones still verify (admin)",
    responses=problem_responses(*ADMIN_ROUTE),
)
async def rotate_keys(request: Request, _: Admin) -> dict[str, Any]:
    keys = runtime_of(request).tokens.keys
    signer = keys.rotate()
    return {"signing_kid": signer.kid, "kids": keys.kids()}


@router.get(
    "/release-keys",
    summary="The public release keys that seal answers (anyone)",
    responses=problem_responses(503),
)
async def release_keys(request: Request) -> dict[str, Any]:
    sealer = runtime_of(request).sealer
    keys = sealer.all_public_keys()
    return {
        "signing_kid": sealer.kid,
        "keys": {kid: base64.b64encode(raw).decode() for kid, raw in keys.items()},
    }


@router.post(
    "/release-keys/rotate",
    summary="Seal with a new release key; older keys endorse it to devices (admin)",
    responses=problem_responses(*ADMIN_ROUTE, 409),
)
async def rotate_release_keys(request: Request, _: Admin) -> dict[str, Any]:
    sealer = runtime_of(request).sealer
    try:
        signer = sealer.rotate()
    except ConfigError as exc:  # the keys come from the settings, not the data dir
        raise Problem(409, str(exc), slug="keys-configured") from None
    return {"signing_kid": signer.kid, "kids": sealer.kids()}
