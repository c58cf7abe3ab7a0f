"""The brain's cap on forged co-watch neighbours (``BrainConfig.cowatch_spread``): a title
the coalition points popular titles at, with no row of its own, is dropped from them; an
honestly followed title keeps its count."""

from __future__ import annotations

import numpy as np

from omega.brain import BrainConfig
from omega.brain._store_cowatch import CowatchRows
from omega.brain.cowatch import CowatchMatrix

# Positions: 0 and 1 popular sources; 2 honest (it has its own row); 9 the forged target.
ROWS = CowatchRows(
    sources=np.array([0, 0, 1, 1, 2], np.int64),
    neighbours=np.array([9, 2, 9, 2, 0], np.int64),
    counts=np.array([192.0, 12.0, 192.0, 8.0, 12.0], np.float32),
)


def _row(spread: float) -> np.ndarray:
    # Rows summing to 1 (degree exponent 1), so the figures below read as shares.
    config = BrainConfig(cowatch_spread=spread, cowatch_backward=0.0, cowatch_degree_exponent=1.0)
    matrix = CowatchMatrix.build(ROWS, np.arange(10, dtype=np.int64), config).matrix
    return np.asarray(matrix[0].todense()).ravel()


def test_a_neighbour_backed_beyond_its_own_row_is_dropped() -> None:
    off, on = _row(0.0), _row(1.0)
    assert off[9] > 0.9 and off[9] > off[2]  # the forged target leads the popular row
    assert on[9] == 0 and on[2] == 1.0  # dropped (over k = 3 with no row); 2 keeps its 12
