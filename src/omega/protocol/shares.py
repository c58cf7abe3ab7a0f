"""Exact popularity without a trusted server: a title split between two servers.

A device reports the catalog position of one title it started as a distributed point
function (:mod:`omega.protocol.dpf`): the correction words and the leader's seed go to
the constellation (the *leader*); the helper's seed is sealed with HPKE (RFC 9180:
X25519, HKDF-SHA256, AES-128-GCM, from ``cryptography``) to the *helper*, a second server
run by another operator, and relayed by the leader, which cannot open it. Either server
alone sees a pseudorandom key; the two add their evaluations over many reports into
shares of the exact histogram and release only the sum (each adding its own noise).

**Robustness.** A cheating device could craft keys that add 1,000 to a title, or 1 to
every title. Each report therefore carries additive shares of a random ``a`` and of
``c = a²``, and the servers run a sketch check (after Boneh et al., "Lightweight
Techniques for Private Heavy Hitters", IEEE S&P 2021, §5): with a random vector ``r``
that only the servers know (derived from their shared key and the report's id),
``z = Σ rᵢ·yᵢ`` and ``z* = Σ rᵢ²·yᵢ`` satisfy ``z² = z*`` for every vector ``y`` with one
entry 1 and the rest 0 (or all 0), and for anything else only with probability
≤ 2/PRIME. The servers compute shares of ``z² − z*`` with one Beaver-style
multiplication (``d = z − a`` is opened; it is uniformly random because ``a`` is) and
accept the report when the shares add to 0. A wrong ``c`` only shifts that result by a
constant fixed before ``r`` was drawn, so it cannot help.

Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from omega.errors import InputError
from omega.protocol.dpf import PRIME, SEED, Public, full_eval, gen, public_from_bytes
from omega.protocol.messages import SharedReport

__all__ = [
    "HelperShare",
    "Sketch",
    "domain_bits",
    "make_shared_report",
    "open_helper_share",
    "report_id",
    "sketch",
    "verify_share",
]

_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
_INFO = b"omega shared popularity report v1"
#: A party's input share: its 16-byte DPF seed, then its shares of a and c (4 bytes each).
SHARE_BYTES = SEED + 8
I64 = npt.NDArray[np.int64]


def domain_bits(size: int) -> int:
    """The DPF domain that holds ``size`` catalog positions."""
    if size < 1:
        raise InputError("a shared report needs a catalog of at least one title")
    return max(1, (size - 1).bit_length())


def _bind(public: bytes) -> bytes:
    """The HPKE ``info``: ties the sealed share to its correction words."""
    return _INFO + hashlib.sha256(public).digest()


def _share_bytes(seed: bytes, a: int, c: int) -> bytes:
    return seed + a.to_bytes(4, "little") + c.to_bytes(4, "little")


def make_shared_report(index: int, size: int, helper_key: X25519PublicKey) -> SharedReport:
    """A device's report of the title at catalog position ``index`` (of ``size``)."""
    if not 0 <= index < size:
        raise InputError(f"catalog position {index} is outside a catalog of {size}")
    keys = gen(index, domain_bits(size))
    a = secrets.randbelow(PRIME)
    c = a * a % PRIME
    a0, c0 = secrets.randbelow(PRIME), secrets.randbelow(PRIME)
    a1, c1 = (a - a0) % PRIME, (c - c0) % PRIME
    public = keys.public.to_bytes()
    sealed = _SUITE.encrypt(_share_bytes(keys.seed1, a1, c1), helper_key, info=_bind(public))
    return SharedReport(
        size=size, public=public, leader=_share_bytes(keys.seed0, a0, c0), helper=sealed
    )


def report_id(report: SharedReport) -> bytes:
    """What both servers call a report (the helper refuses to count one twice)."""
    return hashlib.sha256(report.public + report.helper).digest()[:16]


@dataclass(frozen=True, slots=True)
class HelperShare:
    """A party's opened input share."""

    seed: bytes
    a: int
    c: int

    @classmethod
    def parse(cls, data: bytes) -> HelperShare:
        if len(data) != SHARE_BYTES:
            raise InputError(f"an input share is {SHARE_BYTES} bytes, got {len(data)}")
        a = int.from_bytes(data[SEED : SEED + 4], "little")
        c = int.from_bytes(data[SEED + 4 :], "little")
        if a >= PRIME or c >= PRIME:
            raise InputError("input share values must be elements of Z_p")
        return cls(data[:SEED], a, c)


def open_helper_share(report: SharedReport, key: X25519PrivateKey) -> HelperShare:
    """The helper's share, decrypted; :class:`InputError` if it is not for this key."""
    try:
        plain = _SUITE.decrypt(report.helper, key, info=_bind(report.public))
    except (InvalidTag, ValueError) as exc:
        raise InputError(f"the helper's share does not open with this key: {exc!r}") from None
    return HelperShare.parse(plain)


def _check_vector(verify_key: bytes, rid: bytes, size: int) -> I64:
    """The secret random ``r`` for one report: AES-CTR keyed by HMAC(verify key, id)."""
    key = hmac.new(verify_key, b"omega sketch r" + rid, hashlib.sha256).digest()[:16]
    stream = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    raw = np.frombuffer(stream.update(bytes(8 * size)), dtype="<u8")
    return (raw % np.uint64(PRIME)).astype(np.int64)


@dataclass(frozen=True, slots=True)
class Sketch:
    """One party's view of a report after evaluating it: its share of the histogram
    vector, and its shares of ``z``, ``z*``, ``a``, ``c``."""

    party: int
    y: I64
    z: int
    z_star: int
    a: int
    c: int

    @property
    def d(self) -> int:
        """This party's share of ``d = z − a`` (both shares are opened)."""
        return (self.z - self.a) % PRIME

    def w(self, d: int) -> int:
        """This party's share of ``z² − z*`` given the opened ``d``."""
        square = (d * d if self.party == 0 else 0) + 2 * d * self.a + self.c
        return (square - self.z_star) % PRIME


def sketch(party: int, report: SharedReport, share: HelperShare, verify_key: bytes) -> Sketch:
    """Evaluate a report's key over the catalog and compute this party's sketch shares.

    :class:`InputError` when the report is malformed (bad correction words or size)."""
    public: Public = public_from_bytes(report.public)
    if public.bits != domain_bits(report.size):
        raise InputError(
            f"a report over {report.size} titles needs a 2^{domain_bits(report.size)} "
            f"domain, not 2^{public.bits}"
        )
    y = full_eval(party, share.seed, public, report.size)
    r = _check_vector(verify_key, report_id(report), report.size)
    ry = r * y % PRIME
    z = int(ry.sum() % PRIME)
    z_star = int((ry * r % PRIME).sum() % PRIME)
    return Sketch(party, y, z, z_star, share.a, share.c)


def verify_share(w0: int, w1: int) -> bool:
    """Whether the report passed: the two shares of ``z² − z*`` add to 0."""
    return (w0 + w1) % PRIME == 0
