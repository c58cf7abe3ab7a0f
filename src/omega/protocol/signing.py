"""Signed releases: Ed25519 seals on answers, bound to the request they answer; no I/O.

The constellation seals every binary answer that carries release data; a device checks
the seal against the keys it pinned (at registration, or configured out of band) before
it decodes or applies anything. A man in the middle or a compromised cache can then
neither forge an answer nor replay an old one to a new request.

A seal travels inside the frame (``codec``: flag bit 1, then a 2-byte length and the
seal), so every door (HTTP, gRPC, QUIC) carries it the same way. It is msgpack, an
array ``[kid, signature, endorsements]``, and the signature is Ed25519 over 80 bytes::

    b"omega/seal/v1\\0"       14 bytes, the domain (no other Omega signature starts so)
    version, flags           2 bytes, the frame's header bytes 0–1 (flags with bit 1 set)
    SHA-256(request)         32 bytes, the request frame exactly as the server received it
    SHA-256(body)            32 bytes, the frame's body as sent (compressed or not)

Rotation: a new key (``kid``) signs from then on. A device that does not know it yet
learns it from an *endorsement* the answer carries: ``[kid, public key, by, signature]``,
Ed25519 by the key ``by`` over ``b"omega/key/v1\\0"``, the kid's length (4 bytes,
big-endian), the kid and the 32-byte public key. A
device accepts an endorsement only from a key it already trusts, and pins the new key.

Documents that are not frames (the codebook, JSON) carry a :class:`Seal` over a digest
of their content (:func:`codebook_digest`) under the domain ``b"omega/document/v1\\0"``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import msgspec

from omega.errors import LocalProtocolError, SignatureError
from omega.protocol import _ed25519, codec
from omega.protocol._limits import KID_PATTERN, MAX_RELEASE_KEYS, RELEASE_KEY_BYTES
from omega.protocol.messages import PROTOCOL_VERSION

if TYPE_CHECKING:
    # Key objects are cryptography's and exist where keys are held (a constellation signs,
    # a TV pins); checking a seal needs raw bytes only, so it runs where cryptography does
    # not (a browser's Pyodide: ``omega.protocol._ed25519``).
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "KEY_BYTES",
    "MAX_ENDORSEMENTS",
    "MAX_RELEASE_KEYS",
    "UNBOUND",
    "Endorsement",
    "Seal",
    "check_kid",
    "check_public_key",
    "codebook_digest",
    "endorse",
    "public_bytes",
    "request_digest",
    "seal",
    "seal_document",
    "unseal",
    "verify",
    "verify_document",
]

KEY_BYTES = RELEASE_KEY_BYTES
MAX_ENDORSEMENTS = 4
"""Endorsements one seal may carry."""
_KID = re.compile(KID_PATTERN)

_FRAME_DOMAIN = b"omega/seal/v1\x00"
_KEY_DOMAIN = b"omega/key/v1\x00"
_DOCUMENT_DOMAIN = b"omega/document/v1\x00"
_ALTERED = "it was altered on the way, or signed by another key"
_ALTERED_OR_REPLAYED = (
    "it was altered on the way, signed by another key, or answers another request (a replay)"
)


class Endorsement(msgspec.Struct, frozen=True, array_like=True):
    """The key ``by`` vouches for the key ``kid`` (raw Ed25519 ``public``)."""

    kid: str
    public: bytes
    by: str
    signature: bytes


class Seal(msgspec.Struct, frozen=True, array_like=True):
    """Who signed (``kid``), the signature, and endorsements of ``kid`` by older keys."""

    kid: str
    signature: bytes
    endorsements: list[Endorsement] = []


_seal_encoder = msgspec.msgpack.Encoder()
_seal_decoder = msgspec.msgpack.Decoder(Seal)


def request_digest(request: bytes) -> bytes:
    """What an answer is bound to: SHA-256 of the request frame as sent."""
    return hashlib.sha256(request).digest()


UNBOUND = request_digest(b"")
"""The binding of an answer to a request without a body (a GET): such an answer is
authentic but may be an older one (a cache may replay it; it cannot forge it)."""


def check_kid(kid: object, where: str = "key id") -> str:
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise SignatureError(f"{where} {kid!r} is not a key id (1-64 of A-Z a-z 0-9 . _ -)")
    return kid


def check_public_key(raw: object, where: str = "public key") -> bytes:
    """``raw`` if it is a raw Ed25519 key (32 bytes); :class:`SignatureError` if not."""
    if not isinstance(raw, bytes) or len(raw) != KEY_BYTES:
        size = len(raw) if isinstance(raw, bytes) else type(raw).__name__
        raise SignatureError(f"{where} must be {KEY_BYTES} raw Ed25519 bytes, got {size}")
    return raw


def public_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The raw 32 bytes of a key's public half (what devices pin)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes_raw()


# -- making seals (the constellation) ----------------------------------------------------


def endorse(kid: str, public: bytes, *, by: str, key: Ed25519PrivateKey) -> Endorsement:
    """``by`` (holding ``key``) vouches for the key ``kid``."""
    return Endorsement(kid, public, by, key.sign(_key_statement(kid, public)))


def seal(
    frame: bytes,
    *,
    request: bytes,
    kid: str,
    key: Ed25519PrivateKey,
    endorsements: Sequence[Endorsement] = (),
) -> bytes:
    """``frame`` (from :func:`codec.encode`, not sealed) sealed by ``key``, bound to the
    request whose digest is ``request``."""
    taken = codec.parts(frame)
    if taken.seal:
        raise LocalProtocolError("the frame is sealed already")
    flags = taken.flags | codec.FLAG_SEALED
    signature = key.sign(_frame_statement(flags, request, taken.body))
    stamp = _seal_encoder.encode(Seal(kid, signature, list(endorsements)))
    return codec.frame(taken.body, flags=flags, seal=stamp)


def unseal(frame: bytes) -> bytes:
    """``frame`` without its seal (checked as intact, but the seal is not verified)."""
    taken = codec.parts(frame)
    return codec.frame(taken.body, flags=taken.flags & ~codec.FLAG_SEALED)


def seal_document(
    digest: bytes,
    *,
    kid: str,
    key: Ed25519PrivateKey,
    endorsements: Sequence[Endorsement] = (),
) -> Seal:
    """A seal over a document whose content hashes to ``digest``."""
    return Seal(kid, key.sign(_DOCUMENT_DOMAIN + digest), list(endorsements))


def codebook_digest(
    codebook_id: str,
    dim: int,
    k: int,
    centroids_f16: bytes,
    item_ids: Iterable[str],
    *,
    sequence: int,
) -> bytes:
    """SHA-256 over a codebook's content and its place in the server's order: the id
    (4-byte length, UTF-8), the sequence (8 bytes: later publications are higher, so a
    device can refuse an older one replayed), dim and k (4 bytes each), the centroids
    (4-byte length, bytes) and the catalog order (4-byte length, msgpack array of
    strings); all big-endian."""
    h = hashlib.sha256()
    h.update(_field(codebook_id.encode()))
    h.update(sequence.to_bytes(8, "big"))
    h.update(dim.to_bytes(4, "big") + k.to_bytes(4, "big"))
    h.update(_field(centroids_f16))
    h.update(_field(_seal_encoder.encode(list(item_ids))))
    return h.digest()


# -- checking seals (the device) -----------------------------------------------------------


def verify(frame: bytes, *, request: bytes, trusted: Mapping[str, bytes]) -> list[Endorsement]:
    """Check that ``frame`` is sealed by a key in ``trusted`` (kid → raw public key), or by
    a key such a key endorses, and answers the request whose digest is ``request``.

    Returns the endorsements it relied on or found valid (keys to pin); raises
    :class:`SignatureError` (or :class:`RemoteProtocolError` for a damaged frame).
    """
    taken = codec.parts(frame)
    if not taken.seal:
        raise SignatureError(
            "the answer is not signed: this device applies only releases signed by a key it pinned"
        )
    stamp = _decode_seal(taken.seal)
    keys, learned = _with_endorsements(stamp, trusted)
    statement = _frame_statement(taken.flags, request, taken.body)
    _check(keys[stamp.kid], stamp.signature, statement, "the answer", _ALTERED_OR_REPLAYED)
    return learned


def verify_document(
    stamp: Seal, digest: bytes, *, trusted: Mapping[str, bytes], what: str
) -> list[Endorsement]:
    """:func:`verify` for a document whose content hashes to ``digest``."""
    check_kid(stamp.kid, f"{what}: the signing key id")
    keys, learned = _with_endorsements(stamp, trusted)
    _check(keys[stamp.kid], stamp.signature, _DOCUMENT_DOMAIN + digest, what, _ALTERED)
    return learned


def _decode_seal(data: bytes) -> Seal:
    try:
        stamp = _seal_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise SignatureError(f"the answer's seal is malformed: {exc}") from None
    check_kid(stamp.kid, "the answer's signing key id")
    return stamp


def _with_endorsements(
    stamp: Seal, trusted: Mapping[str, bytes]
) -> tuple[dict[str, bytes], list[Endorsement]]:
    """The trusted keys plus those a trusted key endorses; the endorsements accepted."""
    if len(stamp.endorsements) > MAX_ENDORSEMENTS:
        raise SignatureError(
            f"the seal carries {len(stamp.endorsements)} endorsements, over {MAX_ENDORSEMENTS}"
        )
    keys = dict(trusted)
    learned: list[Endorsement] = []
    for e in stamp.endorsements:
        endorser = keys.get(e.by)
        if endorser is None or e.kid in keys:
            continue  # by a key this device does not trust, or of one it already has
        check_kid(e.kid, "an endorsed key id")
        check_public_key(e.public, f"the endorsed key {e.kid!r}")
        what = f"the endorsement of key {e.kid!r} by {e.by!r}"
        _check(endorser, e.signature, _key_statement(e.kid, e.public), what, _ALTERED)
        keys[e.kid] = e.public
        learned.append(e)
    if stamp.kid not in keys:
        known = ", ".join(sorted(trusted)) or "none"
        raise SignatureError(
            f"signed with key {stamp.kid!r}, which this device does not trust (it trusts: "
            f"{known}) and which no trusted key endorses"
        )
    return keys, learned


def _check(public: bytes, signature: bytes, statement: bytes, what: str, why: str) -> None:
    key = check_public_key(public, f"the key checking {what}")
    if not _ed25519.verify(key, signature, statement):
        raise SignatureError(f"{what} does not match its signature: {why}")


def _frame_statement(flags: int, request: bytes, body: bytes) -> bytes:
    if len(request) != 32:
        raise LocalProtocolError("a request digest is 32 bytes (see request_digest)")
    header = bytes((PROTOCOL_VERSION, flags))
    return _FRAME_DOMAIN + header + request + hashlib.sha256(body).digest()


def _key_statement(kid: str, public: bytes) -> bytes:
    return _KEY_DOMAIN + _field(kid.encode()) + public


def _field(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data
