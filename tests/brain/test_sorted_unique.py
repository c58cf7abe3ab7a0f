"""``sorted_unique`` gives what ``np.unique`` gives, and leaves its input alone."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from omega.brain._sorted import sorted_unique


@given(arrays(np.int64, st.integers(0, 600), elements=st.integers(-5, 2**40)))
def test_the_distinct_values_ascending_as_np_unique_gives_them(values: np.ndarray) -> None:
    before = values.copy()
    got = sorted_unique(values)
    assert got.dtype == np.int64
    assert got.tobytes() == np.unique(values).tobytes()
    assert values.tobytes() == before.tobytes()
