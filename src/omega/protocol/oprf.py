"""A two-server oblivious PRF (2HashDH) over edwards25519's prime-order subgroup.

A device turns an input ``x`` into ``r = H(x, k1·k2·H₁(x))`` without either server
seeing ``x`` and without learning ``k1`` or ``k2``: it blinds ``P = H₁(x)`` with a random
scalar ``ρ`` (``B = ρ·P``), the helper answers ``k1·B``, the constellation ``k2·(k1·B)``,
and the device unblinds with ``ρ⁻¹`` (Jarecki, Kiayias, Krawczyk, "Round-Optimal
Password-Protected Secret Sharing", 2014; the keyed form of STAR's randomness server).
Each blinded point is uniformly random in the group, so a server learns nothing about
``x``; a server holding one key cannot evaluate the PRF alone, so neither can try the
inputs one by one — each evaluation needs both, and each rate-limits it per device.

The group is libsodium's (PyNaCl's ``nacl.bindings``): ``crypto_core_ed25519_from_uniform``
maps 32 uniform bytes onto the prime-order subgroup (Elligator 2, cofactor cleared), and
every point a server receives is checked with ``crypto_core_ed25519_is_valid_point``
(canonical, on the curve, in the main subgroup, not of small order). PyNaCl does not
bind libsodium's ristretto255 functions; this subgroup gives the same security for a
PRF whose points are never compared in any other encoding.

Not verifiable: a server could answer with another key (no DLEQ proof). That makes its
answers useless (shares no longer meet under one tag), never reveals an input.

Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import secrets

from nacl import bindings
from nacl.exceptions import RuntimeError as NaclRuntimeError

from omega.errors import InputError

__all__ = [
    "POINT_BYTES",
    "SCALAR_BYTES",
    "Blinded",
    "blind",
    "check_key",
    "direct",
    "evaluate",
    "finalize",
    "new_key",
]

POINT_BYTES = 32
SCALAR_BYTES = 32
_H1 = b"omega oprf h1 v1"
_H2 = b"omega oprf h2 v1"


def new_key() -> bytes:
    """A fresh PRF key: a uniform non-zero scalar."""
    while True:
        key: bytes = bindings.crypto_core_ed25519_scalar_reduce(secrets.token_bytes(64))
        if any(key):
            return key


def check_key(key: bytes, what: str) -> bytes:
    """``key`` if it is a reduced, non-zero scalar; :class:`InputError` naming ``what``."""
    if len(key) != SCALAR_BYTES or not any(key):
        raise InputError(f"{what} must be a non-zero {SCALAR_BYTES}-byte scalar")
    if bindings.crypto_core_ed25519_scalar_reduce(key + bytes(32)) != key:
        raise InputError(f"{what} is not a reduced scalar")
    return key


def _hash_to_group(data: bytes) -> bytes:
    uniform = hashlib.sha512(_H1 + data).digest()[:32]
    point: bytes = bindings.crypto_core_ed25519_from_uniform(uniform)
    return point


class Blinded:
    """A device's blinded input: the point to send, and the secret to unblind with."""

    __slots__ = ("data", "point", "scalar")

    def __init__(self, data: bytes, point: bytes, scalar: bytes) -> None:
        self.data = data
        self.point = point
        self.scalar = scalar


def blind(data: bytes) -> Blinded:
    """Blind ``data`` with a fresh random scalar."""
    scalar = new_key()
    point = bindings.crypto_scalarmult_ed25519_noclamp(scalar, _hash_to_group(data))
    return Blinded(data, point, scalar)


def evaluate(key: bytes, point: bytes) -> bytes:
    """A server's step: ``key·point``. :class:`InputError` for anything but a valid point
    of the prime-order subgroup (a small-order or malformed point could leak the key)."""
    if len(point) != POINT_BYTES or not bindings.crypto_core_ed25519_is_valid_point(point):
        raise InputError("not a valid point of the prime-order group")
    try:
        out: bytes = bindings.crypto_scalarmult_ed25519_noclamp(key, point)
    except NaclRuntimeError:
        raise InputError("the point evaluates to the identity") from None
    return out


def finalize(blinded: Blinded, evaluated: bytes) -> bytes:
    """The PRF output for ``blinded.data`` from both servers' evaluation of its point."""
    if len(evaluated) != POINT_BYTES or not bindings.crypto_core_ed25519_is_valid_point(evaluated):
        raise InputError("the servers answered with an invalid point")
    inverse = bindings.crypto_core_ed25519_scalar_invert(blinded.scalar)
    unblinded: bytes = bindings.crypto_scalarmult_ed25519_noclamp(inverse, evaluated)
    return _output(blinded.data, unblinded)


def _output(data: bytes, unblinded: bytes) -> bytes:
    return hashlib.sha512(_H2 + len(data).to_bytes(2, "big") + data + unblinded).digest()[:32]


def direct(keys: tuple[bytes, ...], data: bytes) -> bytes:
    """The PRF evaluated with every key in hand (tests, and the threat model's coalition
    of both servers): what :func:`blind`, :func:`evaluate` and :func:`finalize` give,
    without the blinding, which only hides ``data`` from the key holders (one scalar
    multiplication per key instead of three and two point checks: the simulator's audit
    tags every contributed pair this way)."""
    point: bytes = _hash_to_group(data)  # in the prime-order group: no check needed
    for key in keys:
        try:
            point = bindings.crypto_scalarmult_ed25519_noclamp(key, point)
        except NaclRuntimeError:
            raise InputError("the point evaluates to the identity") from None
    return _output(data, point)
