"""Sealing answers with the release key ring (``omega.protocol.signing`` does the bytes).

The ring's signer seals every binary answer that carries release data; devices pin the
signer's public key when they register. After a rotation, a device names the keys it
trusts in each ``SyncRequest`` and the answer carries an endorsement of the new signer by
one of them (made once per pair of keys and kept: Ed25519 signatures are deterministic).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric import ed25519

from omega.constellation._keys import KeyRing, SigningKey
from omega.errors import ConfigError
from omega.protocol import codec, signing

__all__ = ["ReleaseSealer"]


class ReleaseSealer:
    """Seals frames and documents with the release ring's signing key."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring
        self._endorsed: dict[tuple[str, str], signing.Endorsement] = {}
        self._reserves: dict[str, int] = {}

    @property
    def kid(self) -> str:
        """The key id that seals answers now."""
        return self._ring.signer.kid

    def public_keys(self) -> dict[str, bytes]:
        """What a device pins at registration: the signing key (kid → raw public key).
        Older keys are not handed out: a device that pinned one is endorsed forward."""
        signer = self._ring.signer
        return {signer.kid: _raw_public(signer)}

    def all_public_keys(self) -> dict[str, bytes]:
        """Every key of the ring, for operators (``GET /api/omega/release-keys``)."""
        return {key.kid: _raw_public(key) for key in self._ring.by_age()}

    def seal(self, frame: bytes, *, request: bytes, trusted: Sequence[str] = ()) -> bytes:
        """``frame`` sealed to the request digest ``request``; endorsed for a device that
        trusts only the ``trusted`` older keys."""
        signer = self._ring.signer
        return signing.seal(
            frame,
            request=request,
            kid=signer.kid,
            key=_ed25519(signer),
            endorsements=self._endorsements(trusted),
        )

    def reserve(self) -> int:
        """Bytes a seal adds to an answer's frame, at most: its length prefix, the
        signer's key id, the signature and one endorsement (what :meth:`seal` attaches
        for a device that trusts an older key). Pulls are fitted to their byte budget
        with this much left, so the sealed frame a device receives stays within it
        (``Exchange.pull``)."""
        signer = self._ring.signer
        reserve = self._reserves.get(signer.kid)
        if reserve is None:
            # As long as any endorsement: by the ring's longest key id.
            longest = max(self._ring.kids(), key=len)
            widest = signing.Endorsement(signer.kid, bytes(32), longest, bytes(64))
            bare = codec.frame(b"")
            sealed = signing.seal(
                bare,
                request=signing.UNBOUND,
                kid=signer.kid,
                key=_ed25519(signer),
                endorsements=[widest],
            )
            reserve = self._reserves[signer.kid] = len(sealed) - len(bare)
        return reserve

    def seal_document(self, digest: bytes) -> signing.Seal:
        """A seal over a document (the codebook), endorsed by every older private key of
        the ring (at most ``MAX_ENDORSEMENTS``, newest first): no request says which a
        device trusts."""
        signer = self._ring.signer
        older = [k.kid for k in reversed(self._ring.by_age()) if k.kid != signer.kid]
        return signing.seal_document(
            digest,
            kid=signer.kid,
            key=_ed25519(signer),
            endorsements=self._endorsements(older, limit=signing.MAX_ENDORSEMENTS),
        )

    def rotate(self) -> SigningKey:
        """A new signing key; the old ones stay to endorse it."""
        return self._ring.rotate()

    def kids(self) -> list[str]:
        return self._ring.kids()

    def _endorsements(self, trusted: Sequence[str], *, limit: int = 1) -> list[signing.Endorsement]:
        signer = self._ring.signer
        if signer.kid in trusted:
            return []
        found: list[signing.Endorsement] = []
        for kid in sorted(trusted, reverse=True):  # the newest first (kids sort by age)
            key = self._ring.get(kid)
            if key is None or key.private is None:
                continue
            found.append(self._endorsement(key, signer))
            if len(found) == limit:
                break
        return found

    def _endorsement(self, by: SigningKey, signer: SigningKey) -> signing.Endorsement:
        pair = (by.kid, signer.kid)
        endorsement = self._endorsed.get(pair)
        if endorsement is None:
            endorsement = signing.endorse(
                signer.kid, _raw_public(signer), by=by.kid, key=_ed25519(by)
            )
            self._endorsed[pair] = endorsement
        return endorsement


def _ed25519(key: SigningKey) -> ed25519.Ed25519PrivateKey:
    if not isinstance(key.private, ed25519.Ed25519PrivateKey):
        raise ConfigError(f"release key {key.kid!r} has no Ed25519 private key to sign with")
    return key.private


def _raw_public(key: SigningKey) -> bytes:
    if not isinstance(key.public, ed25519.Ed25519PublicKey):
        raise ConfigError(f"release key {key.kid!r} is not an Ed25519 key")
    return signing.public_bytes(key.public)
