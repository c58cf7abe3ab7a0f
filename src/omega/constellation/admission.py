"""Who may register: the server's half of attested registration (``omega.protocol.attestation``).

An attested registration must name a manufacturer key the operator registered and did
not revoke, carry a certificate that key signed and that is valid now, and be signed by
the certified device key at a time within ``attestation_max_skew`` of the server's clock
and later than the device's previous registration. It then counts against its
manufacturer's registration limit (after the checks: forged certificates cannot use up a
real manufacturer's budget). A device is one viewer: registering again returns its
viewer id with new tokens, so one certificate cannot mint identities (and such a
registration is refunded to the limit: one device cannot use up its maker's budget).
The device is bound to the device key it first registered with: a certificate for the
same serial under another key is refused (409), so whoever holds a manufacturer key
cannot take over an existing TV's viewer, unless the operator re-keys that device
(``POST /api/omega/devices/rekey``).

A registration without attestation is refused unless ``allow_unattested`` is set.
Every other refusal is a 403 problem saying what is wrong.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from omega.constellation._runtime import Runtime
from omega.constellation.guards import enforce_manufacturer_rate, refund_manufacturer_rate
from omega.constellation.problems import Problem
from omega.errors import AuthError, ConflictError
from omega.protocol.attestation import verify_registration
from omega.protocol.messages import Attestation, DeviceCertificate, Registration
from omega.storage.base import AttestedDevice, ManufacturerKey, ViewerRecord

__all__ = ["Admission", "admit"]

_UNATTESTED = (
    "this server registers only attested devices: send the device's manufacturer-signed "
    "certificate and a signature by its device key (Registration.attestation)"
)


@dataclass(frozen=True, slots=True)
class Admission:
    viewer_id: str
    new: bool  # False: an attested device registering again, given its viewer id back


async def admit(runtime: Runtime, registration: Registration) -> Admission:
    """The viewer ``registration`` registers as, or a 403/429 problem."""
    proof = registration.attestation
    if proof is None:
        if not runtime.settings.allow_unattested:
            raise Problem(403, _UNATTESTED, slug="attestation-required")
        record = _record(runtime, registration)
        await runtime.db(lambda: runtime.storage.create_viewer(record))
        runtime.exchange.remember_region(record.viewer_id, record.region)
        return Admission(record.viewer_id, new=True)
    return await _attested(runtime, registration, proof)


async def _attested(runtime: Runtime, registration: Registration, proof: Attestation) -> Admission:
    cert = proof.certificate
    key = await _trusted_key(runtime, cert)
    try:
        verify_registration(
            registration,
            Ed25519PublicKey.from_public_bytes(key.public_key),
            now=runtime.clock.now(),
            max_skew=runtime.settings.attestation_max_skew,
        )
    except AuthError as exc:
        raise Problem(403, str(exc), slug="attestation-refused") from None
    await enforce_manufacturer_rate(runtime, cert.manufacturer_id)
    device = AttestedDevice(
        cert.manufacturer_id, cert.device_id, cert.key_id, proof.signed_at, cert.device_key
    )
    record = _record(runtime, registration, model=cert.model)
    try:
        viewer_id = await runtime.db(lambda: runtime.storage.register_device(device, record))
    except ConflictError as exc:  # another device key for this serial: no takeover
        await refund_manufacturer_rate(runtime, cert.manufacturer_id)
        raise Problem(409, str(exc), slug="device-key-conflict") from None
    if viewer_id != record.viewer_id:  # no new identity: it costs its maker nothing
        await refund_manufacturer_rate(runtime, cert.manufacturer_id)
    if viewer_id is None:
        raise Problem(
            403,
            f"device {cert.device_id!r} already registered with a signature this old or newer "
            "(a replayed registration): sign a new one",
            slug="registration-replayed",
        )
    if viewer_id != record.viewer_id:
        await _refuse_revoked(runtime, viewer_id)
    else:  # a new viewer (one registering again keeps the region it had)
        runtime.exchange.remember_region(viewer_id, record.region)
    return Admission(viewer_id, new=viewer_id == record.viewer_id)


async def _refuse_revoked(runtime: Runtime, viewer_id: str) -> None:
    """A device registering again as a viewer the operator revoked gets no tokens."""
    known = await runtime.db(lambda: runtime.storage.get_viewer(viewer_id))
    if known is not None and known.revoked_at is not None:
        raise Problem(
            403,
            "the operator revoked this device's viewer: it gets no new tokens",
            slug="viewer-revoked",
        )


async def _trusted_key(runtime: Runtime, cert: DeviceCertificate) -> ManufacturerKey:
    name = f"{cert.manufacturer_id}/{cert.key_id}"
    key = await runtime.db(
        lambda: runtime.storage.get_manufacturer_key(cert.manufacturer_id, cert.key_id)
    )
    if key is None:
        raise Problem(
            403,
            f"manufacturer key {name} is not registered here; the operator adds it with "
            "POST /api/omega/manufacturers",
            slug="unknown-manufacturer-key",
        )
    if key.revoked_at is not None:
        raise Problem(
            403,
            f"manufacturer key {name} was revoked; its certificates are no longer accepted",
            slug="manufacturer-key-revoked",
        )
    return key


def _record(runtime: Runtime, registration: Registration, *, model: str = "") -> ViewerRecord:
    """A new viewer for ``registration`` (an attested device's model is its certificate's)."""
    return ViewerRecord(
        viewer_id="v_" + secrets.token_urlsafe(16),
        region=registration.region,
        device_model=model or registration.device_model,
        created_at=runtime.clock.now(),
        client_version=registration.client_version,
    )
