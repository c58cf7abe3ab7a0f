"""The co-watch messages (msgpack, ``application/msgpack``) and the device's proof.

Who sends what (``docs/cowatch.md``):

- TV → helper, ``POST /helper/v1/cowatch/oprf``: :class:`OprfRequest` (blinded points),
  answered by :class:`OprfResponse` (each times the helper's key ``k1``);
- TV → constellation, ``POST /api/omega/cowatch/oprf``: :class:`OprfPoints` (the
  helper's answers), answered with each times ``k2``;
- TV → helper, ``POST /helper/v1/cowatch/reports``: :class:`ReportRequest`, answered by
  :class:`ReportResponse` (which reports were queued, and why the others were not);
- leader → helper, ``POST /helper/v1/cowatch/batch`` / ``…/ack``: :class:`ReportBatch`
  (shuffled, no TV named) and :class:`BatchAck`.

A TV proves to the helper that it is an attested device on every request
(:class:`DeviceProof`): its manufacturer certificate and its device key's Ed25519
signature over the request's kind, its digest and the time — the helper trusts the same
manufacturer keys as the constellation, so it counts devices, not accounts the
constellation could mint.

Every TV request is at most :data:`MAX_REQUEST_BYTES` (5 KB, the pull budget): a TV cuts
its points and reports into consecutive pieces under it (:func:`pieces`), each its own
request with its own proof.

Pure, no I/O.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Callable, Sequence
from typing import TypeVar

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from omega.errors import AuthError, InputError
from omega.protocol.attestation import DeviceIdentity, verify_certificate
from omega.protocol.cowatch import SealedReport
from omega.protocol.messages import DeviceCertificate

__all__ = [
    "ALREADY_REPORTED",
    "MAX_REQUEST_BYTES",
    "BatchAck",
    "CowatchInfo",
    "DeviceProof",
    "OprfPoints",
    "OprfRequest",
    "OprfResponse",
    "ReportBatch",
    "ReportRequest",
    "ReportResponse",
    "device_of",
    "pieces",
    "prove",
    "request_items",
    "verify_proof",
]

_PROOF = "omega cowatch request v1"
_encoder = msgspec.msgpack.Encoder()
T = TypeVar("T")
#: The most bytes of one co-watch request body from a TV, to either server: the pull
#: budget (every answer a TV gets is ≤ 5 KB; its requests are held to the same bound).
MAX_REQUEST_BYTES = 5 * 1024
#: The helper's answer for a report whose tag this device already sent: on a retried
#: piece, the first try's reports (it reached the helper; its answer did not come back).
ALREADY_REPORTED = "this device already reported this tag"


class DeviceProof(msgspec.Struct, frozen=True, kw_only=True):
    """An attested device's signature over one request (see :func:`prove`). ``nonce``:
    random per signature, so a retried request (same body, same second on a simulated
    clock) gets a new proof — the helper accepts each proof once; empty in a proof from
    before it existed, which the signature then does not cover."""

    certificate: DeviceCertificate
    signed_at: float
    signature: bytes
    nonce: bytes = b""


class OprfRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Blinded points for the helper to evaluate (32 bytes each), with the device's proof."""

    points: list[bytes]
    proof: DeviceProof | None = None


class OprfPoints(msgspec.Struct, frozen=True, kw_only=True):
    """Points for the constellation to evaluate (the helper's answers): no device proof,
    since the constellation knows the registered viewer already."""

    points: list[bytes]


class OprfResponse(msgspec.Struct, frozen=True, kw_only=True):
    points: list[bytes]


class ReportRequest(msgspec.Struct, frozen=True, kw_only=True):
    reports: list[SealedReport]
    proof: DeviceProof | None = None


class ReportResponse(msgspec.Struct, frozen=True, kw_only=True):
    """Per report, in order: "" when queued, else why not (a duplicate of a tag this TV
    already sent, a malformed report). ``remaining``: reports left this epoch."""

    errors: list[str]
    epoch: int
    remaining: int


class ReportBatch(msgspec.Struct, frozen=True, kw_only=True):
    """A shuffled batch the helper hands the leader ("" id and no reports: none ready)."""

    batch_id: str
    reports: list[SealedReport] = []


class BatchAck(msgspec.Struct, frozen=True, kw_only=True):
    batch_id: str


class CowatchInfo(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /api/omega/cowatch``: what a TV needs to report (the constellation's X25519
    key the reports are sealed to, the threshold, the per-epoch bound and epoch length)."""

    leader_key: bytes
    threshold: int
    per_epoch: int
    epoch_s: float


def pieces(
    items: Sequence[T], size: Callable[[Sequence[T]], int], limit: int = MAX_REQUEST_BYTES
) -> list[list[T]]:
    """``items`` cut, in order, into the fewest consecutive pieces whose request
    (``size(piece)``: its encoded bytes) is at most ``limit``; :class:`InputError` if
    one item alone is over it. No piece is empty; no items, no pieces."""
    out: list[list[T]] = []
    start, n = 0, len(items)
    while start < len(items):
        n = min(n, len(items) - start)
        while size(items[start : start + n]) > limit:
            if n == 1:
                raise InputError(f"one co-watch item alone is over {limit} bytes")
            n = max(1, n * limit // size(items[start : start + n]))
        while start + n < len(items) and size(items[start : start + n + 1]) <= limit:
            n += 1  # the shrink above is proportional: fill the piece up
        out.append(list(items[start : start + n]))
        start += n
    return out


def _payload(
    kind: str, body_digest: bytes, signed_at: float, cert_signature: bytes, nonce: bytes
) -> bytes:
    signed = (_PROOF, kind, body_digest, signed_at, cert_signature)
    return _encoder.encode((*signed, nonce) if nonce else signed)


def _digest(kind: str, items: list[bytes]) -> bytes:
    h = hashlib.sha256(kind.encode())
    for item in items:
        h.update(len(item).to_bytes(4, "big") + item)
    return h.digest()


def request_items(request: OprfRequest | ReportRequest) -> list[bytes]:
    """What a proof covers: the points, or each report's tag and sealed bytes."""
    if isinstance(request, OprfRequest):
        return list(request.points)
    return [part for r in request.reports for part in (r.tag, r.sealed)]


def prove(identity: DeviceIdentity, kind: str, request: OprfRequest | ReportRequest) -> DeviceProof:
    """``identity``'s proof for ``request`` of ``kind`` ("oprf" or "reports"), signed now
    with a fresh nonce."""
    signed_at, nonce = float(identity.clock.now()), secrets.token_bytes(16)
    digest = _digest(kind, request_items(request))
    payload = _payload(kind, digest, signed_at, identity.certificate.signature, nonce)
    return DeviceProof(
        certificate=identity.certificate,
        signed_at=signed_at,
        signature=identity.key.sign(payload),
        nonce=nonce,
    )


def device_of(cert: DeviceCertificate) -> str:
    """The name the helper counts a device by (its maker and serial)."""
    return f"{cert.manufacturer_id}/{cert.device_id}"


def verify_proof(
    proof: DeviceProof | None,
    kind: str,
    request: OprfRequest | ReportRequest,
    manufacturer_keys: dict[tuple[str, str], Ed25519PublicKey],
    *,
    now: float,
    max_skew: float,
) -> str:
    """The device a request comes from; :class:`AuthError` saying what is wrong unless
    a trusted maker certified it and its device key signed this request lately."""
    if proof is None:
        raise AuthError("a co-watch request to the helper carries a device proof")
    cert = proof.certificate
    if len(proof.nonce) > 32:
        raise AuthError("a device proof's nonce is at most 32 bytes")
    maker = manufacturer_keys.get((cert.manufacturer_id, cert.key_id))
    if maker is None:
        raise AuthError(
            f"the helper trusts no manufacturer key {cert.manufacturer_id}/{cert.key_id}"
        )
    verify_certificate(cert, maker, now=now, leeway=max_skew)
    if not (math.isfinite(proof.signed_at) and abs(proof.signed_at - now) <= max_skew):
        raise AuthError(
            f"the request was signed at {proof.signed_at:.0f}, more than {max_skew:.0f} s "
            f"from the helper's time {now:.0f}: set the device's clock"
        )
    digest = _digest(kind, request_items(request))
    payload = _payload(kind, digest, proof.signed_at, cert.signature, proof.nonce)
    try:
        Ed25519PublicKey.from_public_bytes(cert.device_key).verify(proof.signature, payload)
    except (ValueError, InvalidSignature):
        raise AuthError(
            f"the request is not signed by the key of device {cert.device_id!r}"
        ) from None
    return device_of(cert)
