"""The JWT key ring and token service without a server: rotation, RSA, verify-only keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from omega.clock import ManualClock
from omega.constellation._keys import KeyRing
from omega.constellation.auth import AdminGate, TokenService
from omega.constellation.settings import Settings
from omega.errors import AuthError, ConfigError


def _pem(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public_pem(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _service(ring: KeyRing, clock: ManualClock) -> TokenService:
    return TokenService(
        ring,
        issuer="iss",
        audience="aud",
        access_ttl=900,
        refresh_ttl=86400,
        leeway=0,
        clock=clock,
    )


def test_a_key_directory_is_created_once_and_persists(tmp_path: Path) -> None:
    first = KeyRing.open_directory(tmp_path / "keys")
    again = KeyRing.open_directory(tmp_path / "keys")
    assert first.signer.kid == again.signer.kid
    assert first.signer.algorithm == "EdDSA"
    assert (tmp_path / "keys" / f"{first.signer.kid}.pem").stat().st_mode & 0o077 == 0


def test_rotation_signs_with_the_newest_and_verifies_all(tmp_path: Path) -> None:
    clock = ManualClock(start=2_000_000_000)
    ring = KeyRing.open_directory(tmp_path / "keys")
    tokens = _service(ring, clock)
    old = tokens.issue("v1", "access")
    new_key = ring.rotate()
    assert ring.signer.kid == new_key.kid
    assert KeyRing.open_directory(tmp_path / "keys").signer.kid == new_key.kid
    new = tokens.issue("v1", "access")
    assert tokens.verify(old, "access").viewer_id == "v1"
    assert tokens.verify(new, "access").viewer_id == "v1"


def test_rsa_keys_and_verify_only_public_keys() -> None:
    clock = ManualClock(start=2_000_000_000)
    retired = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    current = ed25519.Ed25519PrivateKey.generate()
    signer_of_old = _service(KeyRing.from_pems({"a-old": _pem(retired)}), clock)
    old_token = signer_of_old.issue("v2", "refresh")
    assert signer_of_old.keys.signer.algorithm == "RS256"

    ring = KeyRing.from_pems({"a-old": _public_pem(retired), "b-new": _pem(current)})
    assert ring.signer.kid == "b-new"
    tokens = _service(ring, clock)
    assert tokens.verify(old_token, "refresh").viewer_id == "v2"
    with pytest.raises(AuthError):
        tokens.verify(old_token, "access")


def test_bad_key_configuration_is_a_config_error() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ConfigError):
        KeyRing.from_pems(
            {"weak": _public_pem(weak), "ok": _pem(ed25519.Ed25519PrivateKey.generate())}
        )
    with pytest.raises(ConfigError):
        KeyRing.from_pems({"only-public": _public_pem(ed25519.Ed25519PrivateKey.generate())})
    for bad in ("bad kid!", "k1\n"):  # "$" would let the trailing newline through
        with pytest.raises(ConfigError, match="key id"):
            KeyRing.from_pems({bad: _pem(ed25519.Ed25519PrivateKey.generate())})
    with pytest.raises(ConfigError):
        KeyRing.from_pems({"junk": b"-----BEGIN PRIVATE KEY-----\nnope\n"})


def test_tokens_expire_on_the_injected_clock() -> None:
    clock = ManualClock(start=2_000_000_000)
    tokens = _service(KeyRing.from_pems({"k": _pem(ed25519.Ed25519PrivateKey.generate())}), clock)
    token = tokens.issue("v3", "access")
    assert tokens.verify(token, "access").expires_at == 2_000_000_000 + 900
    clock.advance(899)
    assert tokens.verify(token, "access").viewer_id == "v3"  # now also cached
    assert tokens.verify(token, "access").viewer_id == "v3"
    clock.advance(2)
    with pytest.raises(AuthError, match="expired"):
        tokens.verify(token, "access")
    with pytest.raises(AuthError, match="expired"):
        tokens.verify(token, "access")
    future = _service(tokens.keys, ManualClock(start=2_000_100_000)).issue("v3", "access")
    with pytest.raises(AuthError, match="not valid yet"):
        tokens.verify(future, "access")


def test_admin_gate() -> None:
    gate = AdminGate("s" * 20)
    gate.check("s" * 20)
    with pytest.raises(AuthError):
        gate.check("t" * 20)
    with pytest.raises(AuthError):
        gate.check(None)
    with pytest.raises(ConfigError):
        AdminGate("short")


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OMEGA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OMEGA_RATE_LIMIT", "5")
    monkeypatch.setenv("OMEGA_FEDERATION_INTERVAL", "0")
    monkeypatch.setenv("OMEGA_FAILPOINTS", '["stop-after-ingest"]')
    settings = Settings()
    assert settings.rate_limit == 5
    assert settings.federation_interval == 0
    assert settings.storage_url == f"sqlite:///{tmp_path}/constellation.db"
    assert "stop-after-ingest" in settings.failpoints
    assert Settings(db_url="postgresql://x@h/db").storage_url == "postgresql://x@h/db"
