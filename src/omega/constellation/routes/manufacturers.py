"""Manufacturer keys and attested devices (admin token).

Register a key, list them, revoke one. Revocation is final for that key id: its
certificates are refused at registration, the viewers it attested are refused new tokens
and their pushes (so their access ends at once for pushes, within ``access_token_ttl``
for pulls), and their patterns are left out of every round from the next one on; a
device registers again with a certificate from another key to come back.

Re-key a device: a registered device stays bound to its device key (another key for its
serial is refused, 409); the operator forgets that key when a TV's key really changed,
and the device's next registration records its new one.
"""

from __future__ import annotations

import base64
from typing import Any, TypeVar

import msgspec
from fastapi import APIRouter, Request
from starlette.responses import Response

from omega.constellation._runtime import runtime_of
from omega.constellation._wire import read_body
from omega.constellation.guards import ADMIN_ROUTE, Admin
from omega.constellation.openapi import json_body_doc, json_reply_doc, problem_responses
from omega.constellation.problems import Problem
from omega.errors import ConflictError, InputError
from omega.protocol.attestation import (
    check_device_id,
    check_name,
    load_public_key,
    public_key_bytes,
)
from omega.storage.base import ManufacturerKey

__all__ = [
    "DeviceRekey",
    "ManufacturerKeyDocument",
    "RekeyedDevice",
    "TrustedManufacturerKey",
    "router",
]

router = APIRouter(prefix="/api/omega", tags=["management"])

_MAX_DOCUMENT_BYTES = 16 * 1024
T = TypeVar("T")


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


class DeviceRekey(msgspec.Struct, frozen=True, kw_only=True):
    """A registered device whose device key the server is to forget."""

    manufacturer_id: str
    device_id: str


class RekeyedDevice(msgspec.Struct, frozen=True, kw_only=True):
    """A device whose next registration records its device key; ``viewer_id`` is the viewer
    it keeps."""

    manufacturer_id: str
    device_id: str
    viewer_id: str


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


def _parsed(data: bytes, kind: type[T], what: str) -> T:
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.DecodeError as exc:
        raise Problem(400, f"not {what}: {exc}", slug="bad-request") from None


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
    data = await read_body(request, limit=_MAX_DOCUMENT_BYTES)
    doc = _parsed(data, ManufacturerKeyDocument, "a manufacturer key document")
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


@router.post(
    "/devices/rekey",
    summary="Forget an attested device's key: its next registration records a new one (admin)",
    response_class=Response,
    openapi_extra=json_body_doc("DeviceRekey"),
    responses=json_reply_doc("RekeyedDevice", 200, "Re-keyed")
    | problem_responses(*ADMIN_ROUTE, 400, 404, 413, 422),
)
async def rekey_device(request: Request, _: Admin) -> Response:
    runtime = runtime_of(request)
    data = await read_body(request, limit=_MAX_DOCUMENT_BYTES)
    doc = _parsed(data, DeviceRekey, "a device to re-key")
    try:
        check_name(doc.manufacturer_id, "manufacturer_id")
        check_device_id(doc.device_id, "device_id")
    except InputError as exc:
        raise Problem(422, str(exc), slug="invalid-device") from None
    viewer_id = await runtime.db(
        lambda: runtime.storage.rekey_device(doc.manufacturer_id, doc.device_id)
    )
    if viewer_id is None:
        raise Problem(
            404,
            f"no device {doc.device_id!r} of manufacturer {doc.manufacturer_id!r} is registered",
            slug="no-such-device",
        )
    answer = RekeyedDevice(
        manufacturer_id=doc.manufacturer_id, device_id=doc.device_id, viewer_id=viewer_id
    )
    return _json(msgspec.to_builtins(answer))
