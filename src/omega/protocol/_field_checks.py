"""The rules every field check of ``omega.protocol.validation`` is built from: integers,
numbers and text within bounds, key ids, list lengths, unique ids, exact byte strings and
vectors. Each raises :class:`Violation` with the path to the offending field; the
public functions of ``validation`` turn that into :class:`InvalidMessageError`.

Comparisons are written so that NaN fails them (``0.0 <= x <= 1.0`` is False for NaN).
"""

from __future__ import annotations

import re

from omega.protocol._fast import ids_ok
from omega.protocol._limits import (
    EMBEDDING_DIM,
    KID_PATTERN,
    MAX_ID_LENGTH,
    MAX_INT8_SCALE,
    MAX_VECTOR_DIM,
)
from omega.protocol.messages import Vector

__all__ = [
    "INF",
    "Violation",
    "check_bytes",
    "check_count",
    "check_ids",
    "check_int",
    "check_kid",
    "check_text",
    "check_unique",
    "check_vector",
    "is_int",
    "is_number",
]

_BYTES_PER_VALUE = {"f16": 2, "int8": 1}
# An IEEE 754 half is NaN or ±Inf exactly when its five exponent bits are all ones: bits
# 2–6 of its high byte, the second of each little-endian pair. These are the 8 such bytes;
# finding one is a C-speed scan, and the protocol needs no numpy (Pyodide has none offline).
_F16_NON_FINITE_HIGH = bytes(b for b in range(256) if b & 0x7C == 0x7C)
_KID = re.compile(KID_PATTERN)
INF = float("inf")


class Violation(Exception):
    """One broken rule, with the path to the offending field."""


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(value: object, where: str, lo: int, hi: int) -> None:
    if not (is_int(value) and lo <= value <= hi):  # type: ignore[operator]
        raise Violation(f"{where} must be an integer in [{lo}, {hi}], got {value!r}")


def check_text(value: object, where: str, max_length: int, *, empty: bool = False) -> None:
    if not (isinstance(value, str) and (empty or value) and len(value) <= max_length):
        shown = repr(value) if not isinstance(value, str) else f"{len(value)} characters"
        least = 0 if empty else 1
        raise Violation(f"{where} must be a string of {least}..{max_length} characters: {shown}")


def check_kid(value: object, where: str) -> None:
    if not isinstance(value, str) or not _KID.fullmatch(value):
        raise Violation(f"{where} must be a key id (1-64 of A-Z a-z 0-9 . _ -), got {value!r}")


def check_count(items: object, where: str, limit: int) -> None:
    if not isinstance(items, (list, tuple)):
        raise Violation(f"{where} must be a list")
    if len(items) > limit:
        raise Violation(f"{where} has {len(items)} entries, more than {limit}")


def check_unique(ids: list[str], where: str) -> None:
    if len(set(ids)) == len(ids):
        return
    seen: set[str] = set()
    for pattern_id in ids:
        if pattern_id in seen:
            raise Violation(f"{where}: pattern id {pattern_id!r} appears more than once")
        seen.add(pattern_id)


def check_ids(items: list[str], where: str, limit: int) -> None:
    check_count(items, where, limit)
    if ids_ok(items):
        return
    for i, item in enumerate(items):
        check_text(item, f"{where}[{i}]", MAX_ID_LENGTH)


def check_bytes(value: object, where: str, size: int) -> None:
    if not (isinstance(value, bytes) and len(value) == size):
        raise Violation(f"{where} must be {size} bytes")


def check_vector(vector: Vector, where: str, *, dim: int | None = EMBEDDING_DIM) -> None:
    if not isinstance(vector, Vector):
        raise Violation(f"{where} must be a Vector")
    per_value = _BYTES_PER_VALUE.get(vector.encoding) if isinstance(vector.encoding, str) else None
    if per_value is None:
        raise Violation(f"{where}.encoding must be 'f16' or 'int8', got {vector.encoding!r}")
    if dim is None:
        check_int(vector.dim, f"{where}.dim", 1, MAX_VECTOR_DIM)
    elif not is_int(vector.dim) or vector.dim != dim:
        raise Violation(f"{where}.dim must be {dim}, got {vector.dim!r}")
    if not isinstance(vector.data, bytes) or len(vector.data) != vector.dim * per_value:
        size = len(vector.data) if isinstance(vector.data, bytes) else "not bytes"
        raise Violation(f"{where}.data must be {vector.dim * per_value} bytes, got {size}")
    if vector.encoding == "int8":
        if not (is_number(vector.scale) and 0.0 < vector.scale <= MAX_INT8_SCALE):
            raise Violation(
                f"{where}.scale must be in (0, {MAX_INT8_SCALE:.3g}], got {vector.scale!r}"
            )
    else:
        if not is_number(vector.scale) or vector.scale != 1.0:
            raise Violation(f"{where}.scale must be 1.0 for f16, got {vector.scale!r}")
        high = vector.data[1::2]
        if len(high.translate(None, _F16_NON_FINITE_HIGH)) != len(high):
            raise Violation(f"{where}.data holds NaN or Inf")
