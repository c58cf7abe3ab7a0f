"""Key rings: several keys by ``kid``; the newest private key signs, any verifies.

Two rings use it: the JWT keys (:data:`JWT_KEYS`, Ed25519 or RSA) and the release keys
that seal answers to devices (:data:`RELEASE_KEYS`, Ed25519 only).

Rotation: add a key (``KeyRing.rotate`` writes a new Ed25519 key to the data dir, or an
operator adds one to ``OMEGA_JWT_KEYS`` / ``OMEGA_RELEASE_KEYS``). For JWTs, tokens
signed by older keys stay valid until they expire, and an old key is retired by removing
it once its refresh tokens are gone. For releases, an older private key endorses the new
one to devices that still trust only the older (see ``omega.protocol.signing``); retire
it once every device has synced since the rotation.
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
from omega.protocol import KID_PATTERN

__all__ = ["JWT_KEYS", "RELEASE_KEYS", "KeyKind", "KeyRing", "SigningKey"]

PrivateKey = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ed25519.Ed25519PublicKey | rsa.RSAPublicKey

_KID = re.compile(KID_PATTERN)


@dataclass(frozen=True, slots=True)
class KeyKind:
    """What a ring holds: its name in messages, where operators configure it, and
    whether RSA keys are allowed besides Ed25519."""

    label: str
    setting: str
    rsa: bool


JWT_KEYS = KeyKind(label="JWT", setting="OMEGA_JWT_KEYS", rsa=True)
RELEASE_KEYS = KeyKind(label="release", setting="OMEGA_RELEASE_KEYS", rsa=False)


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    public: PublicKey
    private: PrivateKey | None

    @property
    def algorithm(self) -> str:
        """The one algorithm this key may be used with (pinned, never read from a token)."""
        return "EdDSA" if isinstance(self.public, ed25519.Ed25519PublicKey) else "RS256"


def _load_pem(kid: str, pem: bytes, kind: KeyKind = JWT_KEYS) -> SigningKey:
    name = f"{kind.label} key {kid!r}"
    if not _KID.fullmatch(kid):
        raise ConfigError(f"{kind.label} key id {kid!r} must match {_KID.pattern}")
    key = _read_pem(name, pem)
    if isinstance(key.public, rsa.RSAPublicKey):
        if not kind.rsa:
            raise ConfigError(f"{name}: only Ed25519 keys are allowed")
        if key.public.key_size < 2048:
            raise ConfigError(f"{name}: RSA keys need at least 2048 bits")
    return SigningKey(kid=kid, public=key.public, private=key.private)


def _read_pem(name: str, pem: bytes) -> SigningKey:
    try:
        if b"PRIVATE KEY" in pem:
            private = serialization.load_pem_private_key(pem, password=None)
            if not isinstance(private, (ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey)):
                raise ConfigError(f"{name}: only Ed25519 or RSA keys are allowed")
            return SigningKey(kid="", public=private.public_key(), private=private)
        public = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name} is not a readable PEM key: {exc}") from exc
    if not isinstance(public, (ed25519.Ed25519PublicKey, rsa.RSAPublicKey)):
        raise ConfigError(f"{name}: only Ed25519 or RSA keys are allowed")
    return SigningKey(kid="", public=public, private=None)


class KeyRing:
    """Keys by kid. ``signer`` is the configured kid or the greatest kid holding a private key."""

    def __init__(
        self,
        keys: list[SigningKey],
        *,
        signing_kid: str | None = None,
        directory: Path | None,
        kind: KeyKind = JWT_KEYS,
    ) -> None:
        self.kind = kind
        self._keys = {key.kid: key for key in keys}
        self._directory = directory
        self._pinned = signing_kid
        self._signer = self._choose_signer()

    def _choose_signer(self) -> SigningKey:
        if self._pinned is not None:
            key = self._keys.get(self._pinned)
            if key is None or key.private is None:
                raise ConfigError(f"no private {self.kind.label} key with kid {self._pinned!r}")
            return key
        private = sorted(kid for kid, key in self._keys.items() if key.private is not None)
        if not private:
            raise ConfigError(f"the {self.kind.label} key ring holds no private key to sign with")
        return self._keys[private[-1]]

    @classmethod
    def from_pems(
        cls, pems: dict[str, bytes], *, signing_kid: str | None = None, kind: KeyKind = JWT_KEYS
    ) -> KeyRing:
        return cls(
            [_load_pem(kid, pem, kind) for kid, pem in pems.items()],
            signing_kid=signing_kid,
            directory=None,
            kind=kind,
        )

    @classmethod
    def open_directory(
        cls, directory: Path, *, signing_kid: str | None = None, kind: KeyKind = JWT_KEYS
    ) -> KeyRing:
        """Load ``<kid>.pem`` files from ``directory``; create a first Ed25519 key if none."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not any(directory.glob("*.pem")):
            _write_new_key(directory)
        paths = sorted(directory.glob("*.pem"))
        keys = [_load_pem(path.stem, path.read_bytes(), kind) for path in paths]
        return cls(keys, signing_kid=signing_kid, directory=directory, kind=kind)

    @property
    def signer(self) -> SigningKey:
        return self._signer

    def get(self, kid: str) -> SigningKey | None:
        return self._keys.get(kid)

    def kids(self) -> list[str]:
        return sorted(self._keys)

    def by_age(self) -> list[SigningKey]:
        """Every key, oldest kid first."""
        return [self._keys[kid] for kid in sorted(self._keys)]

    def rotate(self) -> SigningKey:
        """Create a new Ed25519 key in the ring's directory; it signs from now on."""
        if self._directory is None:
            raise ConfigError(f"keys come from {self.kind.setting}; rotate them there")
        kid = _write_new_key(self._directory)
        pem = (self._directory / f"{kid}.pem").read_bytes()
        self._keys[kid] = _load_pem(kid, pem, self.kind)
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
