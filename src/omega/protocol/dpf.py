"""A two-party distributed point function (DPF) over a small domain, with full-domain
evaluation vectorised in numpy.

A device that wants to count one title ``α`` out of ``2^bits`` without naming it splits
the point function ``f(x) = 1 if x = α else 0`` into two keys. Each key alone is
pseudorandom (it says nothing about ``α``); evaluating both keys on every ``x`` and adding
the two outputs modulo ``PRIME`` gives back ``f``. Two servers that each hold one key and
sum their evaluations over many devices hold additive shares of the exact histogram;
added together, the shares give the counts and nothing else.

The construction is the tree-based DPF of Boyle, Gilboa and Ishai ("Function Secret
Sharing: Improvements and Extensions", CCS 2016, figure 1): one 128-bit seed and control
bit per tree node, a correction word per level, and a final correction word that turns the
last seeds into output shares. The pseudorandom generator is fixed-key AES-128 in the
Matyas–Meyer–Oseas mode (``AES_k(s) ⊕ s``), the usual choice for DPFs, through the
``cryptography`` package; the fixed keys are public constants.

The correction words are the same in both keys, so a report sends them once (to the
leader, in the clear: they are random-looking without a seed) and each server gets only
its own 16-byte seed. Key size for ``bits = 14``: 16 + 14·17 + 4 = 258 bytes in total.

Pure functions, no I/O.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from omega.errors import InputError

__all__ = ["MAX_BITS", "PRIME", "DpfKeys", "Public", "full_eval", "gen", "public_from_bytes"]

#: Output group: integers modulo 2^31 − 1 (products of two elements fit in int64).
PRIME = 2_147_483_647
#: Domains up to 2^20 titles (a full evaluation of 2^20 is ~40 ms; catalogs are smaller).
MAX_BITS = 20
SEED = 16
U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]

# Public fixed keys of the PRG (left child, right child, output conversion). Any fixed
# distinct values work; these are ASCII labels.
_KEYS = (
    bytes.fromhex("6f6d6567612d6470662d6c6566742d31"),  # "omega-dpf-left-1"
    bytes.fromhex("6f6d6567612d6470662d72696768742d"),  # "omega-dpf-right-"
    bytes.fromhex("6f6d6567612d6470662d636f6e766572"),  # "omega-dpf-conver"
)
_CIPHERS = tuple(Cipher(algorithms.AES(k), modes.ECB()) for k in _KEYS)


def _mmo(which: int, seeds: U8) -> U8:
    """``AES_k(s) ⊕ s`` for every 16-byte row of ``seeds`` (one AES call for all rows)."""
    encryptor = _CIPHERS[which].encryptor()
    out = np.frombuffer(encryptor.update(seeds.tobytes()), dtype=np.uint8)
    return out.reshape(seeds.shape) ^ seeds


def _expand(seeds: U8) -> tuple[U8, U8, U8, U8]:
    """The PRG: each seed → (left seed, left bit, right seed, right bit).

    The control bit is the low bit of the first byte, cleared in the child seed."""
    left = _mmo(0, seeds)
    right = _mmo(1, seeds)
    tl: U8 = (left[:, 0] & 1).astype(np.uint8)
    tr: U8 = (right[:, 0] & 1).astype(np.uint8)
    left[:, 0] &= 0xFE
    right[:, 0] &= 0xFE
    return left, tl, right, tr


def _convert(seeds: U8) -> I64:
    """Each seed → an element of Z_PRIME (64 pseudorandom bits reduced; bias < 2^-32)."""
    raw = _mmo(2, seeds)[:, :8].copy()
    words = raw.view("<u8").ravel()
    return (words % np.uint64(PRIME)).astype(np.int64)


@dataclass(frozen=True, slots=True)
class Public:
    """The correction words both keys share."""

    bits: int
    seeds: U8  # (bits, 16): the seed correction of each level
    t_left: U8  # (bits,): the left control-bit correction of each level
    t_right: U8  # (bits,)
    last: int  # the output correction, in Z_PRIME

    def to_bytes(self) -> bytes:
        bits = (self.t_left.astype(np.uint8) | (self.t_right.astype(np.uint8) << 1)).tobytes()
        return (
            bytes([self.bits]) + self.seeds.tobytes() + bits + int(self.last).to_bytes(4, "little")
        )


def public_from_bytes(data: bytes) -> Public:
    """Parse :meth:`Public.to_bytes`; :class:`InputError` on anything malformed."""
    if not data:
        raise InputError("empty DPF correction words")
    bits = data[0]
    if not 1 <= bits <= MAX_BITS:
        raise InputError(f"DPF domain of 2^{bits} titles is outside 2^1..2^{MAX_BITS}")
    size = 1 + bits * SEED + bits + 4
    if len(data) != size:
        raise InputError(f"DPF correction words for 2^{bits} are {size} bytes, got {len(data)}")
    seeds = np.frombuffer(data, dtype=np.uint8, count=bits * SEED, offset=1).reshape(bits, SEED)
    flags = np.frombuffer(data, dtype=np.uint8, count=bits, offset=1 + bits * SEED)
    if np.any(flags > 3):
        raise InputError("DPF control-bit corrections must be 0..3")
    last = int.from_bytes(data[-4:], "little")
    if last >= PRIME:
        raise InputError("DPF output correction is not an element of Z_p")
    t_left: U8 = (flags & 1).astype(np.uint8)
    t_right: U8 = ((flags >> 1) & 1).astype(np.uint8)
    return Public(bits, seeds.copy(), t_left, t_right, last)


@dataclass(frozen=True, slots=True)
class DpfKeys:
    public: Public
    seed0: bytes  # the leader's root seed
    seed1: bytes  # the helper's root seed


def _seed_row(seed: bytes) -> U8:
    row = np.frombuffer(seed, dtype=np.uint8).reshape(1, SEED).copy()
    row[0, 0] &= 0xFE
    return row


def gen(alpha: int, bits: int, beta: int = 1) -> DpfKeys:
    """Keys whose evaluations add up to ``beta`` at ``alpha`` and 0 elsewhere."""
    if not 1 <= bits <= MAX_BITS:
        raise InputError(f"DPF domain bits must be in 1..{MAX_BITS}, got {bits}")
    if not 0 <= alpha < (1 << bits):
        raise InputError(f"DPF point {alpha} is outside the domain of 2^{bits}")
    roots = [secrets.token_bytes(SEED), secrets.token_bytes(SEED)]
    s = [_seed_row(roots[0]), _seed_row(roots[1])]
    t = [0, 1]
    cw_seeds = np.zeros((bits, SEED), dtype=np.uint8)
    cw_tl = np.zeros(bits, dtype=np.uint8)
    cw_tr = np.zeros(bits, dtype=np.uint8)
    for level in range(bits):
        a = (alpha >> (bits - 1 - level)) & 1
        sl0, tl0, sr0, tr0 = _expand(s[0])
        sl1, tl1, sr1, tr1 = _expand(s[1])
        lose = (sr0 ^ sr1) if a == 0 else (sl0 ^ sl1)
        cw_seeds[level] = lose[0]
        cw_tl[level] = int(tl0[0]) ^ int(tl1[0]) ^ a ^ 1
        cw_tr[level] = int(tr0[0]) ^ int(tr1[0]) ^ a
        keep = [(sl0, tl0), (sl1, tl1)] if a == 0 else [(sr0, tr0), (sr1, tr1)]
        t_keep_cw = cw_tl[level] if a == 0 else cw_tr[level]
        for b in (0, 1):
            seed_keep, bit_keep = keep[b]
            s[b] = seed_keep ^ lose if t[b] else seed_keep
            t[b] = int(bit_keep[0]) ^ (t[b] & int(t_keep_cw))
    c0 = int(_convert(s[0])[0])
    c1 = int(_convert(s[1])[0])
    last = (beta - c0 + c1) % PRIME
    if t[1]:
        last = (-last) % PRIME
    public = Public(bits, cw_seeds, cw_tl, cw_tr, last)
    return DpfKeys(public, roots[0], roots[1])


def full_eval(party: int, seed: bytes, public: Public, size: int | None = None) -> I64:
    """Party ``party``'s (0 or 1) shares of ``f(x)`` for x in 0..size−1, in Z_PRIME."""
    if party not in (0, 1):
        raise InputError(f"DPF party must be 0 or 1, got {party}")
    if len(seed) != SEED:
        raise InputError(f"a DPF seed is {SEED} bytes, got {len(seed)}")
    domain = 1 << public.bits
    size = domain if size is None else size
    if not 0 < size <= domain:
        raise InputError(f"cannot evaluate {size} points of a 2^{public.bits} domain")
    seeds = _seed_row(seed)
    t = np.array([party], dtype=np.uint8)
    for level in range(public.bits):
        # Only the nodes whose subtree reaches below ``size`` are expanded.
        width = -(-size // (1 << (public.bits - 1 - level)))
        sl, tl, sr, tr = _expand(seeds)
        mask = t.astype(bool)
        sl[mask] ^= public.seeds[level]
        sr[mask] ^= public.seeds[level]
        tl ^= t & public.t_left[level]
        tr ^= t & public.t_right[level]
        seeds = np.empty((2 * len(sl), SEED), dtype=np.uint8)
        seeds[0::2] = sl
        seeds[1::2] = sr
        t = np.empty(2 * len(tl), dtype=np.uint8)
        t[0::2] = tl
        t[1::2] = tr
        seeds = seeds[:width]
        t = t[:width]
    out = (_convert(seeds) + t.astype(np.int64) * public.last) % PRIME
    if party == 1:
        out = (-out) % PRIME
    return out[:size]
