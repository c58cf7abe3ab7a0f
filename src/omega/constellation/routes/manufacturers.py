"""Manufacturer keys (admin token): the keys whose device certificates this server accepts.

Register a key, list them, revoke one. Revocation is final for that key id: its
certificates are refused at registration, the viewers it attested are refused new tokens
(so their access ends within ``access_token_ttl``) and their patterns are left out of
every round from the next one on; a device registers again with a certificate from
another key to come back.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec
from fastapi import APIRouter, Request
from starlette.responses import Response

from omega.constellation._runtime import runtime_of
from omega.constellation._wire import read_body
from omega.constellation.guards import ADMIN_ROUTE, Admin
from omega.constellation.openapi import json_body_doc, json_reply_doc, problem_responses
from omega.constellation.problems import Problem
from omega.errors import ConflictError, InputError
from omega.protocol.attestation import check_name, load_public_key, public_key_bytes
from omega.storage.base import ManufacturerKey

__all__ = ["ManufacturerKeyDocument", "TrustedManufacturerKey", "router"]

router = APIRouter(prefix="/api/omega", tags=["management"])

_MAX_DOCUMENT_BYTES = 16 * 1024


class ManufacturerKeyDocument(msgspec.Struct, frozen=True, kw_only=True):
    """A manufacturer key to trust: ``public_key`` is a PEM block or the 32 raw Ed25519
    bytes in base64 or hex."""

    manufacturer_id: str
    key_id: str
    public_key: str


class TrustedManufacturerKey(msgspec.Struct, frozen=True, kw_only=True):
    """A manufacturer key as the server keeps it: ``public_key`` raw Ed25519, base64;
    ``devices`` the viewers registered with its certificates."""

    manufacturer_id: str
    key_id: str
    public_key: str
    created_at: float
    revoked_at: float | None
    devices: int


def _described(key: ManufacturerKey) -> dict[str, Any]:
    entry = TrustedManufacturerKey(
        manufacturer_id=key.manufacturer_id,
        key_id=key.key_id,
        public_key=base64.b64encode(key.public_key).decode(),
        created_at=key.created_at,
        revoked_at=key.revoked_at,
        devices=key.devices,
    )
    described: dict[str, Any] = msgspec.to_builtins(entry)
    return described


def _json(body: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json")


def _check_names(manufacturer_id: str, key_id: str) -> None:
    try:
        check_name(manufacturer_id, "manufacturer_id")
        check_name(key_id, "key_id")
    except InputError as exc:
        raise Problem(422, str(exc), slug="invalid-key") from None


def _parsed(data: bytes) -> ManufacturerKeyDocument:
    try:
        return msgspec.json.decode(data, type=ManufacturerKeyDocument)
    except msgspec.DecodeError as exc:
        raise Problem(400, f"not a manufacturer key document: {exc}", slug="bad-request") from None


@router.post(
    "/manufacturers",
    summary="Trust a manufacturer's public key for device certificates (admin)",
    response_class=Response,
    openapi_extra=json_body_doc("ManufacturerKeyDocument"),
    responses=json_reply_doc("TrustedManufacturerKey", 201, "Trusted")
    | json_reply_doc("TrustedManufacturerKey", 200, "Already trusted")
    | problem_responses(*ADMIN_ROUTE, 400, 409, 413, 422),
)
async def add_key(request: Request, _: Admin) -> Response:
    runtime = runtime_of(request)
    doc = _parsed(await read_body(request, limit=_MAX_DOCUMENT_BYTES))
    _check_names(doc.manufacturer_id, doc.key_id)
    try:
        raw = public_key_bytes(load_public_key(doc.public_key))
    except InputError as exc:
        raise Problem(422, f"public_key: {exc}", slug="invalid-key") from None
    key = ManufacturerKey(doc.manufacturer_id, doc.key_id, raw, created_at=runtime.clock.now())
    try:
        added = await runtime.db(lambda: runtime.storage.add_manufacturer_key(key))
    except ConflictError as exc:
        raise Problem(409, str(exc), slug="key-conflict") from None
    stored = await runtime.db(
        lambda: runtime.storage.get_manufacturer_key(key.manufacturer_id, key.key_id)
    )
    assert stored is not None
    return _json(_described(stored), 201 if added else 200)


@router.get(
    "/manufacturers",
    summary="Every manufacturer key, revoked ones too (admin)",
    responses=problem_responses(*ADMIN_ROUTE),
)
async def list_keys(request: Request, _: Admin) -> dict[str, Any]:
    runtime = runtime_of(request)
    keys = await runtime.db(runtime.storage.manufacturer_keys)
    return {"keys": [_described(k) for k in keys]}


@router.post(
    "/manufacturers/{manufacturer_id}/keys/{key_id}/revoke",
    summary="Revoke a manufacturer key: its certificates and viewers are refused (admin)",
    responses=problem_responses(*ADMIN_ROUTE, 404, 422),
)
async def revoke_key(
    manufacturer_id: str, key_id: str, request: Request, _: Admin
) -> dict[str, Any]:
    runtime = runtime_of(request)
    _check_names(manufacturer_id, key_id)
    now = runtime.clock.now()
    key = await runtime.db(
        lambda: runtime.storage.revoke_manufacturer_key(manufacturer_id, key_id, now=now)
    )
    if key is None:
        raise Problem(404, f"no manufacturer key {manufacturer_id}/{key_id}", slug="no-such-key")
    return _described(key)
