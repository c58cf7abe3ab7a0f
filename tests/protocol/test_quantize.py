"""Vector quantisation: error bounds, sizes, and refusal of bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from omega.errors import InputError, RemoteProtocolError
from omega.protocol import EMBEDDING_DIM, Vector
from omega.protocol.quantize import from_vector, to_vector

_values = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)
_vectors = arrays(np.float64, st.integers(1, EMBEDDING_DIM), elements=_values)


@settings(max_examples=100, deadline=None)
@given(values=_vectors)
def test_f16_round_trip_error(values: np.ndarray) -> None:
    vector = to_vector(values, "f16")
    assert vector.dim == values.size
    assert len(vector.data) == 2 * values.size
    back = from_vector(vector)
    assert back.dtype == np.float32
    # float16 keeps 11 significant bits; below 2^-14 the spacing is fixed at 2^-24.
    bound = np.abs(values) * 2.0**-11 + 2.0**-25
    assert np.all(np.abs(back - values) <= bound * (1 + 1e-6))


@settings(max_examples=100, deadline=None)
@given(values=_vectors)
def test_int8_round_trip_error(values: np.ndarray) -> None:
    vector = to_vector(values, "int8")
    assert len(vector.data) == values.size
    back = from_vector(vector)
    peak = float(np.abs(values).max())
    # Half a step of the symmetric scale, plus float32 rounding of the product.
    bound = peak / 254 + peak * 2.0**-22 + 1e-30
    assert np.all(np.abs(back.astype(np.float64) - values) <= bound)


def test_int8_keeps_cosine_of_embeddings() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        x = rng.standard_normal(EMBEDDING_DIM)
        x /= np.linalg.norm(x)
        y = from_vector(to_vector(x, "int8")).astype(np.float64)
        assert float(x @ y / np.linalg.norm(y)) > 0.999


def test_zero_vector_round_trips() -> None:
    zeros = np.zeros(EMBEDDING_DIM)
    for encoding in ("f16", "int8"):
        assert not from_vector(to_vector(zeros, encoding)).any()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("encoding", ["f16", "int8"])
def test_non_finite_input_is_refused(bad: float, encoding: str) -> None:
    values = np.ones(EMBEDDING_DIM)
    values[5] = bad
    with pytest.raises(InputError):
        to_vector(values, encoding)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "values", [np.ones((2, 3)), np.ones(0), [70000.0]], ids=["2-D", "empty", "f16 overflow"]
)
def test_bad_shapes_and_ranges_are_refused(values: object) -> None:
    with pytest.raises(InputError):
        to_vector(values, "f16")  # type: ignore[arg-type]


def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(InputError):
        to_vector([1.0], "bf16")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "vector",
    [
        Vector(encoding="f16", dim=4, data=b"\x00" * 7),
        Vector(encoding="int8", dim=4, data=b"\x00" * 8, scale=1.0),
        Vector(encoding="f16", dim=1, data=b"\x00\x7e"),  # NaN
        Vector(encoding="int8", dim=1, data=b"\x01", scale=math.inf),
        Vector(encoding="int8", dim=0, data=b""),
    ],
    ids=["short f16", "long int8", "f16 NaN", "inf scale", "empty"],
)
def test_malformed_vectors_from_peers_are_refused(vector: Vector) -> None:
    with pytest.raises(RemoteProtocolError):
        from_vector(vector)
