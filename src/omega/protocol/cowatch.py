"""Co-watch pairs reported so that a pair is readable only once k distinct TVs sent it.

STAR (Davidson et al., "STAR: Secret Sharing for Private Threshold Aggregation
Reporting", CCS 2022) with its randomness from the two-server OPRF of
:mod:`omega.protocol.oprf`. For a pair of catalog positions ``(a, b)`` a device gets
``r = OPRF(k1·k2, pair)`` and derives from it, deterministically:

- a **tag** (16 bytes): what groups the reports of one pair;
- a **secret** ``s`` in GF(p), p = 2²⁵⁵ − 19, and a degree-(k − 1) polynomial with
  ``s`` as its constant term and its other coefficients hashed from ``s``;
- a **ciphertext** of the pair under ChaCha20-Poly1305 keyed by a hash of ``s``
  (the tag as associated data; one key encrypts one plaintext, so a fixed nonce is safe).

The report carries the tag, one point ``(x, P(x))`` at a random ``x`` and the
ciphertext, HPKE-sealed to the constellation with the tag bound into the seal. Whoever
holds k points with distinct ``x`` of one tag interpolates ``s`` and reads the pair;
with fewer, every secret is equally likely. Once ``s`` is known every further point is
checked against the polynomial, so a garbage point neither counts nor blocks recovery.

Pure functions and message types, no I/O.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import struct
from dataclasses import dataclass

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from omega.errors import InputError

__all__ = [
    "FIELD",
    "MAX_SEALED",
    "MAX_TRIES",
    "TAG_BYTES",
    "CowatchReport",
    "Recovered",
    "SealedReport",
    "Share",
    "check_sealed",
    "make_report",
    "on_polynomial",
    "open_report",
    "pair_input",
    "quantise",
    "recover",
    "seal_report",
]

#: The field of the secret sharing: points are elements of GF(FIELD).
FIELD = 2**255 - 19
TAG_BYTES = 16
_ELEMENT = 32
_PAIR = struct.Struct(">II")
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
_SEAL_INFO = b"omega cowatch report v1"
#: Subsets tried per tag before a group is left for the next round (each costs one
#: interpolation and one AEAD open; ~60 µs).
MAX_TRIES = 64
#: The most bytes a sealed report may have (tag, x, y, ciphertext, HPKE's 48).
MAX_SEALED = 256


def pair_input(a: int, b: int) -> bytes:
    """The OPRF input of the ordered pair ``a → b`` (catalog positions)."""
    if not (0 <= a < 2**32 and 0 <= b < 2**32) or a == b:
        raise InputError(f"a co-watch pair is two different catalog positions, got ({a}, {b})")
    return b"omega cowatch pair v1" + _PAIR.pack(a, b)


def _element(label: bytes, *parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(label + b"".join(parts)).digest(), "big") % FIELD


def _to_bytes(value: int) -> bytes:
    return value.to_bytes(_ELEMENT, "big")


def _tag(r: bytes) -> bytes:
    return hashlib.sha256(b"omega cowatch tag" + r).digest()[:TAG_BYTES]


def _coefficients(secret: int, k: int) -> list[int]:
    s = _to_bytes(secret)
    return [secret] + [
        _element(b"omega cowatch coef", s, i.to_bytes(2, "big")) for i in range(1, k)
    ]


def _at(coefficients: list[int], x: int) -> int:
    y = 0
    for c in reversed(coefficients):
        y = (y * x + c) % FIELD
    return y


def _aead(secret: int) -> ChaCha20Poly1305:
    return ChaCha20Poly1305(hashlib.sha256(b"omega cowatch key" + _to_bytes(secret)).digest())


class CowatchReport(msgspec.Struct, frozen=True, kw_only=True):
    """What the constellation reads once it opens a report: the tag, one point of the
    tag's polynomial, and the pair encrypted under the polynomial's secret."""

    tag: bytes
    x: bytes
    y: bytes
    ciphertext: bytes


class SealedReport(msgspec.Struct, frozen=True, kw_only=True):
    """A report as it travels through the helper: the tag in the clear (the helper
    refuses a second report of one tag from one TV) and the rest sealed to the
    constellation, bound to that tag."""

    tag: bytes
    sealed: bytes


@dataclass(frozen=True, slots=True)
class Share:
    """An opened report's point, with its ciphertext."""

    x: int
    y: int
    ciphertext: bytes


def make_report(r: bytes, a: int, b: int, *, k: int) -> CowatchReport:
    """The report of pair ``(a, b)`` whose OPRF output is ``r``, for threshold ``k``."""
    if k < 1:
        raise InputError(f"the threshold k must be at least 1, got {k}")
    tag = _tag(r)
    secret = _element(b"omega cowatch secret", r)
    x = 1 + secrets.randbelow(FIELD - 1)
    y = _at(_coefficients(secret, k), x)
    ciphertext = _aead(secret).encrypt(bytes(12), _PAIR.pack(a, b), tag)
    return CowatchReport(tag=tag, x=_to_bytes(x), y=_to_bytes(y), ciphertext=ciphertext)


def seal_report(report: CowatchReport, leader_key: X25519PublicKey) -> SealedReport:
    """``report`` sealed to the constellation's X25519 key, bound to its tag."""
    plain = msgspec.msgpack.encode(report)
    return SealedReport(
        tag=report.tag, sealed=_SUITE.encrypt(plain, leader_key, info=_SEAL_INFO + report.tag)
    )


def check_sealed(report: SealedReport) -> None:
    """:class:`InputError` unless ``report`` has the shape of one (what the helper checks)."""
    if len(report.tag) != TAG_BYTES:
        raise InputError(f"a co-watch tag is {TAG_BYTES} bytes, got {len(report.tag)}")
    if not 0 < len(report.sealed) <= MAX_SEALED:
        raise InputError(f"a sealed co-watch report is 1..{MAX_SEALED} bytes")


def open_report(report: SealedReport, key: X25519PrivateKey) -> Share:
    """The point and ciphertext of a sealed report; :class:`InputError` if it does not
    open with ``key``, is not bound to its tag, or is malformed."""
    check_sealed(report)
    try:
        plain = _SUITE.decrypt(report.sealed, key, info=_SEAL_INFO + report.tag)
        inner = msgspec.msgpack.decode(plain, type=CowatchReport)
    except (InvalidTag, ValueError, msgspec.DecodeError):
        raise InputError("the co-watch report does not open with this key for its tag") from None
    if inner.tag != report.tag or len(inner.x) != _ELEMENT or len(inner.y) != _ELEMENT:
        raise InputError("the co-watch report's inner tag or point is malformed")
    x, y = int.from_bytes(inner.x, "big"), int.from_bytes(inner.y, "big")
    if not (0 < x < FIELD and y < FIELD) or len(inner.ciphertext) != _PAIR.size + 16:
        raise InputError("the co-watch report's point or ciphertext is out of range")
    return Share(x, y, inner.ciphertext)


@dataclass(frozen=True, slots=True)
class Recovered:
    """A tag's pair, read from k points: its secret (to check later points) and the
    distinct ``x`` of the points on its polynomial (one per TV)."""

    a: int
    b: int
    secret: int
    xs: frozenset[int]


def _interpolate_zero(points: list[tuple[int, int]]) -> int:
    total = 0
    for i, (xi, yi) in enumerate(points):
        num, den = 1, 1
        for j, (xj, _) in enumerate(points):
            if i != j:
                num = num * (-xj) % FIELD
                den = den * (xi - xj) % FIELD
        total = (total + yi * num * pow(den, -1, FIELD)) % FIELD
    return total


def on_polynomial(secret: int, k: int, shares: list[Share]) -> frozenset[int]:
    """The distinct ``x`` of the ``shares`` that lie on ``secret``'s polynomial."""
    coefficients = _coefficients(secret, k)
    return frozenset(s.x for s in shares if _at(coefficients, s.x) == s.y)


def recover(tag: bytes, shares: list[Share], *, k: int) -> Recovered | None:
    """The pair behind ``tag`` if some k of ``shares`` (distinct ``x``) interpolate to a
    secret that opens a ciphertext; None below k or when no subset tried opens one."""
    distinct = list({s.x: s for s in shares}.values())
    # Honest reports of one pair carry one ciphertext: try the commonest first.
    by_text: dict[bytes, list[Share]] = {}
    for s in distinct:
        by_text.setdefault(s.ciphertext, []).append(s)
    tries = 0
    for text, group in sorted(by_text.items(), key=lambda kv: -len(kv[1])):
        for subset in itertools.combinations(group, k):
            tries += 1
            if tries > MAX_TRIES:
                return None
            secret = _interpolate_zero([(s.x, s.y) for s in subset])
            try:
                plain = _aead(secret).decrypt(bytes(12), text, tag)
            except InvalidTag:
                continue
            a, b = _PAIR.unpack(plain)
            return Recovered(a, b, secret, on_polynomial(secret, k, distinct))
    return None


def quantise(count: int) -> int:
    """A released count rounded down to its two leading bits (3, 4, 6, 8, 12, 16, …):
    enough to rank neighbours, less to single out one TV's contribution."""
    if count < 4:
        return count
    top = count.bit_length() - 2
    return (count >> top) << top
