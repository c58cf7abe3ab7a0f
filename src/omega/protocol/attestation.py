"""Device attestation: a manufacturer vouches for a device; the device proves it holds its key.

A TV maker keeps an Ed25519 *manufacturer key*; the constellation's operator registers
its public half. At the factory each TV gets an Ed25519 *device key* of its own and a
:class:`DeviceCertificate`: the manufacturer's signature over (manufacturer id, key id,
device id, model, the device's public key, validity). At registration the TV sends the
certificate and signs the registration with its device key (:meth:`DeviceIdentity.attest`);
the server checks both signatures, the validity window and that ``signed_at`` is fresh
(:func:`verify_registration`), and keeps each device's last ``signed_at`` so that a
captured registration cannot be sent again. A certificate copied off one TV is useless
without that TV's device key.

Signatures cover a canonical encoding of the *values* (msgpack of a tuple that starts
with a domain label), never the bytes received, so each statement has one signed form
and a signature for one purpose is never valid for another. Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass, field

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from omega.clock import Clock, SystemClock
from omega.errors import AuthError, InputError
from omega.protocol._limits import KID_PATTERN, MAX_ID_LENGTH, MAX_SHORT_TEXT
from omega.protocol.messages import Attestation, DeviceCertificate, Registration

__all__ = [
    "DEFAULT_LIFETIME",
    "DeviceIdentity",
    "Manufacturer",
    "certificate_payload",
    "check_device_id",
    "check_model",
    "check_name",
    "issue_certificate",
    "load_private_key",
    "load_public_key",
    "private_key_pem",
    "public_key_bytes",
    "registration_payload",
    "verify_certificate",
    "verify_registration",
]

_CERTIFICATE = "omega device certificate v1"
_REGISTRATION = "omega registration v1"
#: How long a certificate made by :meth:`Manufacturer.device` is valid: a TV's life.
DEFAULT_LIFETIME = 15 * 365 * 86_400
_encoder = msgspec.msgpack.Encoder()
_NAME = re.compile(KID_PATTERN)


def check_name(value: str, what: str) -> str:
    """``value`` if it may name a manufacturer or one of its keys (the server's rule:
    1-64 of A-Z a-z 0-9 . _ -, the whole string); :class:`InputError` naming ``what``."""
    if not _NAME.fullmatch(value):
        raise InputError(f"{what} must be 1-64 of A-Z a-z 0-9 . _ - (got {value!r})")
    return value


def check_device_id(value: str, what: str) -> str:
    """``value`` if a certificate may carry it as a device id (1..``MAX_ID_LENGTH``
    characters, as the server checks); :class:`InputError` naming ``what``."""
    return _check_text(value, what, MAX_ID_LENGTH)


def check_model(value: str, what: str) -> str:
    """``value`` if a certificate may carry it as a model (1..``MAX_SHORT_TEXT``)."""
    return _check_text(value, what, MAX_SHORT_TEXT)


def _check_text(value: str, what: str, max_length: int) -> str:
    if not 1 <= len(value) <= max_length:
        raise InputError(f"{what} must be 1..{max_length} characters (got {len(value)})")
    return value


def certificate_payload(cert: DeviceCertificate) -> bytes:
    """What the manufacturer signs: every field of ``cert`` but the signature."""
    return _encoder.encode(
        (
            _CERTIFICATE,
            cert.manufacturer_id,
            cert.key_id,
            cert.device_id,
            cert.model,
            cert.device_key,
            cert.not_before,
            cert.not_after,
        )
    )


def registration_payload(registration: Registration, signed_at: float, cert: bytes) -> bytes:
    """What the device signs: the registration's fields, the time, and the certificate's
    signature (so the proof is bound to that one certificate)."""
    return _encoder.encode(
        (
            _REGISTRATION,
            registration.device_model,
            registration.region,
            registration.client_version,
            signed_at,
            cert,
        )
    )


def issue_certificate(
    manufacturer_key: Ed25519PrivateKey,
    *,
    manufacturer_id: str,
    key_id: str,
    device_id: str,
    model: str,
    device_key: Ed25519PublicKey,
    not_before: int,
    not_after: int,
) -> DeviceCertificate:
    """A certificate for ``device_key``, signed with ``manufacturer_key`` (the factory's job)."""
    unsigned = DeviceCertificate(
        manufacturer_id=manufacturer_id,
        key_id=key_id,
        device_id=device_id,
        model=model,
        device_key=public_key_bytes(device_key),
        not_before=not_before,
        not_after=not_after,
        signature=b"",
    )
    signature = manufacturer_key.sign(certificate_payload(unsigned))
    return msgspec.structs.replace(unsigned, signature=signature)


def verify_certificate(
    cert: DeviceCertificate, manufacturer_key: Ed25519PublicKey, *, now: float, leeway: float = 0
) -> None:
    """Raise :class:`AuthError` unless ``manufacturer_key`` signed ``cert`` and ``now``
    lies in its validity window (give or take ``leeway`` seconds)."""
    name = f"the certificate of device {cert.device_id!r}"
    try:
        manufacturer_key.verify(cert.signature, certificate_payload(cert))
    except InvalidSignature:
        raise AuthError(
            f"{name} is not signed by manufacturer key {cert.manufacturer_id}/{cert.key_id}"
        ) from None
    if now + leeway < cert.not_before:
        raise AuthError(f"{name} is not valid before {cert.not_before} (now {now:.0f})")
    if now - leeway > cert.not_after:
        raise AuthError(f"{name} expired at {cert.not_after} (now {now:.0f})")


def verify_registration(
    registration: Registration,
    manufacturer_key: Ed25519PublicKey,
    *,
    now: float,
    max_skew: float,
) -> Attestation:
    """Check a registration's attestation: the certificate (:func:`verify_certificate`),
    the device key's signature over the registration, and that ``signed_at`` is within
    ``max_skew`` seconds of ``now``. Returns the attestation; raises :class:`AuthError`
    saying what is wrong."""
    proof = registration.attestation
    if proof is None:
        raise AuthError("the registration carries no attestation")
    cert = proof.certificate
    verify_certificate(cert, manufacturer_key, now=now, leeway=max_skew)
    if not (math.isfinite(proof.signed_at) and abs(proof.signed_at - now) <= max_skew):
        raise AuthError(
            f"the registration was signed at {proof.signed_at:.0f}, more than {max_skew:.0f} s "
            f"from the server's time {now:.0f}: set the device's clock"
        )
    try:
        device_key = Ed25519PublicKey.from_public_bytes(cert.device_key)
        device_key.verify(
            proof.signature, registration_payload(registration, proof.signed_at, cert.signature)
        )
    except (ValueError, InvalidSignature):
        raise AuthError(
            f"the registration is not signed by the key of device {cert.device_id!r}"
        ) from None
    return proof


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """What a TV keeps to prove it is one: its certificate and its device key. ``clock``
    dates each registration (the wall clock; the server wants it within its skew)."""

    certificate: DeviceCertificate
    key: Ed25519PrivateKey
    clock: Clock = field(default_factory=SystemClock)

    def __post_init__(self) -> None:
        if public_key_bytes(self.key.public_key()) != self.certificate.device_key:
            raise InputError(
                f"the device key does not match the certificate of {self.certificate.device_id!r}"
            )

    def attest(self, registration: Registration) -> Registration:
        """``registration`` with a fresh attestation (signed now)."""
        signed_at = self.clock.now()
        payload = registration_payload(registration, signed_at, self.certificate.signature)
        proof = Attestation(
            certificate=self.certificate, signed_at=signed_at, signature=self.key.sign(payload)
        )
        return msgspec.structs.replace(registration, attestation=proof)


@dataclass(frozen=True, slots=True)
class Manufacturer:
    """A manufacturer key and its names: what a TV maker's factory signs certificates with
    (and what the simulator, the bench and the tests act as)."""

    manufacturer_id: str
    key_id: str
    key: Ed25519PrivateKey

    @classmethod
    def generate(cls, manufacturer_id: str, key_id: str) -> Manufacturer:
        return cls(manufacturer_id, key_id, Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> bytes:
        """The raw public key the operator registers with the constellation."""
        return public_key_bytes(self.key.public_key())

    def certify(
        self,
        device_key: Ed25519PublicKey,
        *,
        device_id: str,
        model: str,
        now: float,
        lifetime: int = DEFAULT_LIFETIME,
    ) -> DeviceCertificate:
        """A certificate for ``device_key``, valid from ``now`` for ``lifetime`` seconds."""
        start = int(now)
        return issue_certificate(
            self.key,
            manufacturer_id=self.manufacturer_id,
            key_id=self.key_id,
            device_id=device_id,
            model=model,
            device_key=device_key,
            not_before=start,
            not_after=start + lifetime,
        )

    def device(
        self,
        device_id: str,
        *,
        model: str = "tv",
        clock: Clock | None = None,
        lifetime: int = DEFAULT_LIFETIME,
    ) -> DeviceIdentity:
        """A new device: a fresh device key and its certificate, valid from now."""
        clock = clock or SystemClock()
        key = Ed25519PrivateKey.generate()
        cert = self.certify(
            key.public_key(), device_id=device_id, model=model, now=clock.now(), lifetime=lifetime
        )
        return DeviceIdentity(cert, key, clock)


# -- keys ---------------------------------------------------------------------------------


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_public_key(data: str | bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from text (a PEM block, or the 32 raw bytes in base64 or hex)
    or from the 32 raw bytes themselves; :class:`InputError` naming the accepted forms."""
    if isinstance(data, bytes) and len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    try:
        text = data if isinstance(data, str) else data.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        return _pem_public_key(text.encode())
    for decode in (bytes.fromhex, _base64):
        try:
            raw = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(raw) == 32:
            return Ed25519PublicKey.from_public_bytes(raw)
    raise InputError(
        "an Ed25519 public key is a PEM block (-----BEGIN PUBLIC KEY-----) or its 32 raw "
        "bytes in base64 or hex"
    )


def _base64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _pem_public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise InputError(f"not a readable PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InputError("the PEM key is not an Ed25519 public key")
    return key


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """An Ed25519 private key from an unencrypted PKCS#8 PEM block."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(f"not a readable, unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError("the PEM key is not an Ed25519 private key")
    return key
