"""The JWT key ring: several keys by ``kid``; the newest private key signs, any verifies.

Rotation: add a key (``KeyRing.rotate`` writes a new Ed25519 key to the data dir, or an
operator adds one to ``OMEGA_JWT_KEYS``); tokens signed by older keys stay valid until
they expire, and an old key is retired by removing it once its refresh tokens are gone.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from omega.errors import ConfigError

__all__ = ["KeyRing", "SigningKey"]

PrivateKey = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ed25519.Ed25519PublicKey | rsa.RSAPublicKey

_KID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    public: PublicKey
    private: PrivateKey | None

    @property
    def algorithm(self) -> str:
        """The one algorithm this key may be used with (pinned, never read from a token)."""
        return "EdDSA" if isinstance(self.public, ed25519.Ed25519PublicKey) else "RS256"


def _load_pem(kid: str, pem: bytes) -> SigningKey:
    if not _KID.match(kid):
        raise ConfigError(f"JWT key id {kid!r} must match {_KID.pattern}")
    try:
        if b"PRIVATE KEY" in pem:
            private = serialization.load_pem_private_key(pem, password=None)
            if not isinstance(private, (ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey)):
                raise ConfigError(f"JWT key {kid!r}: only Ed25519 or RSA keys are allowed")
            return SigningKey(kid=kid, public=private.public_key(), private=private)
        public = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"JWT key {kid!r} is not a readable PEM key: {exc}") from exc
    if not isinstance(public, (ed25519.Ed25519PublicKey, rsa.RSAPublicKey)):
        raise ConfigError(f"JWT key {kid!r}: only Ed25519 or RSA keys are allowed")
    if isinstance(public, rsa.RSAPublicKey) and public.key_size < 2048:
        raise ConfigError(f"JWT key {kid!r}: RSA keys need at least 2048 bits")
    return SigningKey(kid=kid, public=public, private=None)


class KeyRing:
    """Keys by kid. ``signer`` is the configured kid or the greatest kid holding a private key."""

    def __init__(
        self, keys: list[SigningKey], *, signing_kid: str | None = None, directory: Path | None
    ) -> None:
        self._keys = {key.kid: key for key in keys}
        self._directory = directory
        self._pinned = signing_kid
        self._signer = self._choose_signer()

    def _choose_signer(self) -> SigningKey:
        if self._pinned is not None:
            key = self._keys.get(self._pinned)
            if key is None or key.private is None:
                raise ConfigError(f"no private JWT key with kid {self._pinned!r}")
            return key
        private = sorted(kid for kid, key in self._keys.items() if key.private is not None)
        if not private:
            raise ConfigError("the JWT key ring holds no private key to sign with")
        return self._keys[private[-1]]

    @classmethod
    def from_pems(cls, pems: dict[str, bytes], *, signing_kid: str | None = None) -> KeyRing:
        return cls(
            [_load_pem(kid, pem) for kid, pem in pems.items()],
            signing_kid=signing_kid,
            directory=None,
        )

    @classmethod
    def open_directory(cls, directory: Path, *, signing_kid: str | None = None) -> KeyRing:
        """Load ``<kid>.pem`` files from ``directory``; create a first Ed25519 key if none."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not any(directory.glob("*.pem")):
            _write_new_key(directory)
        keys = [_load_pem(path.stem, path.read_bytes()) for path in sorted(directory.glob("*.pem"))]
        return cls(keys, signing_kid=signing_kid, directory=directory)

    @property
    def signer(self) -> SigningKey:
        return self._signer

    def get(self, kid: str) -> SigningKey | None:
        return self._keys.get(kid)

    def kids(self) -> list[str]:
        return sorted(self._keys)

    def rotate(self) -> SigningKey:
        """Create a new Ed25519 key in the ring's directory; it signs from now on."""
        if self._directory is None:
            raise ConfigError("keys come from OMEGA_JWT_KEYS; rotate them there")
        kid = _write_new_key(self._directory)
        self._keys[kid] = _load_pem(kid, (self._directory / f"{kid}.pem").read_bytes())
        self._pinned = None
        self._signer = self._choose_signer()
        return self._signer


def _write_new_key(directory: Path) -> str:
    # Sortable kid: creation time first, so "greatest kid" means "newest key".
    now = time.time_ns()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 10**9))
    kid = f"k{stamp}.{now % 10**9:09d}-{secrets.token_hex(2)}"
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = directory / f"{kid}.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    return kid
