"""Embeddings on the wire: float16, or int8 with one symmetric scale per vector.

f16 keeps about three significant digits (relative error ≤ 2⁻¹¹); int8 halves the size
again with an absolute error of at most ``max|x| / 254`` per component, plenty for
cosine similarity between normalised MiniLM embeddings.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from omega.errors import InputError
from omega.protocol.messages import Vector
from omega.protocol.validation import MAX_INT8_SCALE, MAX_VECTOR_DIM, validate_vector

__all__ = ["from_vector", "to_vector"]

_F16_MAX = float(np.finfo(np.float16).max)
_INT8_LEVELS = 127  # symmetric: -127..127, so negation is exact and 0 is exactly 0


def to_vector(array: npt.ArrayLike, encoding: Literal["f16", "int8"] = "f16") -> Vector:
    """Quantise a 1-D finite array; :class:`InputError` for anything else."""
    values = np.asarray(array, dtype=np.float64)
    if values.ndim != 1 or not 1 <= values.size <= MAX_VECTOR_DIM:
        raise InputError(
            f"a vector must be 1-D with 1..{MAX_VECTOR_DIM} values, got shape {values.shape}"
        )
    if not bool(np.isfinite(values).all()):
        raise InputError("a vector must not contain NaN or Inf")
    peak = float(np.abs(values).max())
    if encoding == "f16":
        if peak > _F16_MAX:
            raise InputError(f"value {peak:g} does not fit in float16 (max {_F16_MAX:g})")
        data = values.astype("<f2").tobytes()
        return Vector(encoding="f16", dim=int(values.size), data=data)
    if encoding == "int8":
        scale = peak / _INT8_LEVELS if peak > 0.0 else 1.0
        if scale > MAX_INT8_SCALE:
            raise InputError(f"value {peak:g} is too large for an int8 vector")
        levels = np.clip(np.rint(values / scale), -_INT8_LEVELS, _INT8_LEVELS)
        data = levels.astype(np.int8).tobytes()
        return Vector(encoding="int8", dim=int(values.size), data=data, scale=scale)
    raise InputError(f"unknown vector encoding {encoding!r} (use 'f16' or 'int8')")


def from_vector(vector: Vector) -> npt.NDArray[np.float32]:
    """Dequantise to float32; :class:`RemoteProtocolError` if the vector is malformed."""
    validate_vector(vector, dim=None)
    if vector.encoding == "f16":
        return np.frombuffer(vector.data, dtype="<f2").astype(np.float32)
    levels = np.frombuffer(vector.data, dtype=np.int8).astype(np.float32)
    return levels * np.float32(vector.scale)
