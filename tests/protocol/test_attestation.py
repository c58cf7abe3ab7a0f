"""Device certificates and signed registrations (``omega.protocol.attestation``), pure."""

from __future__ import annotations

import base64

import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from omega.clock import ManualClock
from omega.errors import AuthError, InputError, RemoteProtocolError
from omega.protocol import codec
from omega.protocol.attestation import (
    DeviceIdentity,
    Manufacturer,
    check_device_id,
    check_model,
    check_name,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_bytes,
    verify_certificate,
    verify_registration,
)
from omega.protocol.messages import Registration

NOW = 1_800_000_000.0
MAKER = Manufacturer.generate("acme", "k1")


def _public() -> object:
    return load_public_key(MAKER.public_key)


def test_a_signed_registration_survives_both_encodings_and_verifies() -> None:
    tv = MAKER.device("SN1", model="X55", clock=ManualClock(NOW))
    signed = tv.attest(Registration(device_model="X55", region="eu"))
    for decoded in (
        codec.decode(codec.encode(signed), expect=Registration),
        codec.decode_json(codec.encode_json(signed), expect=Registration),
    ):
        proof = verify_registration(decoded, _public(), now=NOW + 10, max_skew=60)  # type: ignore[arg-type]
        assert proof.certificate.device_id == "SN1"


@pytest.mark.parametrize(
    "change",
    [
        {"device_id": "SN2"},
        {"model": "X65"},
        {"not_after": 4_000_000_000},
        {"key_id": "k2"},
        {"device_key": public_key_bytes(Ed25519PrivateKey.generate().public_key())},
    ],
)
def test_any_change_to_a_certificate_breaks_its_signature(change: dict[str, object]) -> None:
    cert = MAKER.device("SN1", clock=ManualClock(NOW)).certificate
    altered = msgspec.structs.replace(cert, **change)
    with pytest.raises(AuthError, match="not signed by manufacturer key"):
        verify_certificate(altered, _public(), now=NOW)  # type: ignore[arg-type]


def test_any_change_to_a_signed_registration_breaks_the_device_signature() -> None:
    signed = MAKER.device("SN1", clock=ManualClock(NOW)).attest(Registration(region="eu"))
    moved = msgspec.structs.replace(signed, region="us")
    with pytest.raises(AuthError, match="not signed by the key of device 'SN1'"):
        verify_registration(moved, _public(), now=NOW, max_skew=60)  # type: ignore[arg-type]


def test_validity_window_and_clock_skew() -> None:
    tv = MAKER.device("SN1", clock=ManualClock(NOW), lifetime=100)
    signed = tv.attest(Registration())
    with pytest.raises(AuthError, match="expired"):
        verify_registration(signed, _public(), now=NOW + 500, max_skew=60)  # type: ignore[arg-type]
    with pytest.raises(AuthError, match="not valid before"):
        verify_registration(signed, _public(), now=NOW - 500, max_skew=60)  # type: ignore[arg-type]
    with pytest.raises(AuthError, match="set the device's clock"):
        verify_registration(signed, _public(), now=NOW + 90, max_skew=60)  # type: ignore[arg-type]
    with pytest.raises(AuthError, match="no attestation"):
        verify_registration(Registration(), _public(), now=NOW, max_skew=60)  # type: ignore[arg-type]


def test_an_identity_refuses_a_key_that_is_not_its_certificates() -> None:
    cert = MAKER.device("SN1").certificate
    with pytest.raises(InputError, match="does not match"):
        DeviceIdentity(cert, Ed25519PrivateKey.generate())


def test_public_keys_load_from_raw_base64_hex_and_pem_and_nothing_else() -> None:
    raw = MAKER.public_key
    pem = MAKER.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for form in (raw, base64.b64encode(raw).decode(), raw.hex(), pem, pem.decode()):
        assert public_key_bytes(load_public_key(form)) == raw
    rsa_like = private_key_pem(Ed25519PrivateKey.generate())
    for bad in ("", "hello", base64.b64encode(raw[:31]).decode(), rsa_like):
        with pytest.raises(InputError):
            load_public_key(bad)
    assert public_key_bytes(load_private_key(private_key_pem(MAKER.key)).public_key()) == raw
    with pytest.raises(InputError):
        load_private_key(pem)


def test_the_codec_refuses_malformed_attestations() -> None:
    signed = MAKER.device("SN1").attest(Registration())
    assert signed.attestation is not None
    short_key = msgspec.structs.replace(signed.attestation.certificate, device_key=b"\x01" * 31)
    bad = msgspec.structs.replace(
        signed, attestation=msgspec.structs.replace(signed.attestation, certificate=short_key)
    )
    with pytest.raises(RemoteProtocolError, match="device_key must be 32 bytes"):
        codec.decode_json(msgspec.json.encode(bad), expect=Registration)


def test_names_are_checked_as_the_server_checks_them() -> None:
    assert check_name("acme-2026.x_y", "manufacturer") == "acme-2026.x_y"
    for bad in ("acme\n", "acme corp", "20/26", "../x", "", "a" * 65):
        with pytest.raises(InputError, match="manufacturer must be 1-64 of"):
            check_name(bad, "manufacturer")
    assert check_device_id("SN 42/ü", "device id") == "SN 42/ü"
    with pytest.raises(InputError, match=r"device id must be 1\.\.128 characters \(got 300\)"):
        check_device_id("x" * 300, "device id")
    with pytest.raises(InputError, match=r"model must be 1\.\.256"):
        check_model("", "model")
