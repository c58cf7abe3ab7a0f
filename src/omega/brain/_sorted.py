"""Distinct values of the few hundred rows a request handles, by a sort and a mask:
``np.unique`` sets up a general-purpose path that costs several times more at this size
(56 µs against 15 µs for 385 rows, numpy 2.4)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["sorted_unique"]


def sorted_unique(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The distinct values in ascending order, as ``np.unique`` gives them (a new array;
    ``values`` is left as it is)."""
    ordered = np.sort(values)
    keep = np.empty(len(ordered), dtype=bool)
    keep[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    out: npt.NDArray[np.int64] = ordered[keep]
    return out
