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

Pure, no I/O.
"""

from __future__ import annotations

import hashlib
import math

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from omega.errors import AuthError
from omega.protocol.attestation import DeviceIdentity, verify_certificate
from omega.protocol.cowatch import SealedReport
from omega.protocol.messages import DeviceCertificate

__all__ = [
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
    "prove",
    "request_items",
    "verify_proof",
]

_PROOF = "omega cowatch request v1"
_encoder = msgspec.msgpack.Encoder()


class DeviceProof(msgspec.Struct, frozen=True, kw_only=True):
    """An attested device's signature over one request (see :func:`prove`)."""

    certificate: DeviceCertificate
    signed_at: float
    signature: bytes


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


def _payload(kind: str, body_digest: bytes, signed_at: float, cert_signature: bytes) -> bytes:
    return _encoder.encode((_PROOF, kind, body_digest, signed_at, cert_signature))


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
    """``identity``'s proof for ``request`` of ``kind`` ("oprf" or "reports"), signed now."""
    signed_at = float(identity.clock.now())
    digest = _digest(kind, request_items(request))
    payload = _payload(kind, digest, signed_at, identity.certificate.signature)
    return DeviceProof(
        certificate=identity.certificate, signed_at=signed_at, signature=identity.key.sign(payload)
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
    payload = _payload(kind, _digest(kind, request_items(request)), proof.signed_at, cert.signature)
    try:
        Ed25519PublicKey.from_public_bytes(cert.device_key).verify(proof.signature, payload)
    except (ValueError, InvalidSignature):
        raise AuthError(
            f"the request is not signed by the key of device {cert.device_id!r}"
        ) from None
    return device_of(cert)
