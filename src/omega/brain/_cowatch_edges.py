"""What one request reads of the released co-watch table (:class:`Edges`, gathered by
``CowatchMatrix.edges``), and what requests work out from it: the household title that
most brings each recommended title up, and the strongest neighbours. A read is kept for
the next request with the same history (``CowatchMatrix.read``), and so is what was
worked out from it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from omega.brain._sorted import sorted_unique

__all__ = ["Edges"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


@dataclass(slots=True)
class _Derived:
    """What requests work out from one read's entries, kept with them."""

    best_sources: dict[int, int | None] = field(default_factory=dict)
    listed: I64 | None = None
    #: (the scores, how many, the rows) of the last :meth:`Edges.strongest`.
    strongest: tuple[F32, int, I64] | None = None


@dataclass(frozen=True, slots=True)
class Edges:
    """What one request reads of the table (see :meth:`CowatchMatrix.edges`). A read is
    kept for the next request with the same history (:meth:`CowatchMatrix.read`), and
    so is what requests work out from it."""

    neighbours: I64
    values: F32
    sources: I64
    _derived: _Derived = field(default_factory=_Derived, init=False, compare=False, repr=False)

    def best_sources(self, targets: Sequence[int]) -> list[int | None]:
        """For each target, the household row of its largest entry — the first listed of
        equals; None with no entry above 0. Kept per target: a screen redrawn asks for
        the same titles again."""
        known = self._derived.best_sources
        missing = [t for t in targets if t not in known]
        if missing:
            wanted = np.asarray(missing, dtype=np.int64)
            hit = _members(self.neighbours, wanted)
            best: dict[int, tuple[float, int]] = {}
            for target, value, source in zip(
                self.neighbours[hit].tolist(),
                self.values[hit].tolist(),
                self.sources[hit].tolist(),
                strict=True,
            ):
                if value > best.get(target, (0.0, -1))[0]:
                    best[target] = (value, source)
            for t in wanted.tolist():
                known[t] = best[t][1] if t in best else None
        return [known[t] for t in targets]

    def listed(self) -> I64:
        """The neighbours named, each once, in ascending order (read-only)."""
        derived = self._derived
        if derived.listed is None:
            derived.listed = sorted_unique(self.neighbours)
            derived.listed.flags.writeable = False
        return derived.listed

    def strongest(self, scores: F32, count: int) -> I64:
        """Of the neighbours named, those scoring above 0 in ``scores`` (this read's
        co-watch scores), at most ``count`` of them, the highest scored (read-only)."""
        held = self._derived.strongest
        if held is not None and held[0] is scores and held[1] == count:
            return held[2]
        scored = self.listed()
        scored = scored[scores[scored] > 0]
        if len(scored) > count:
            scored = scored[np.argpartition(-scores[scored], count)[:count]]
        scored.flags.writeable = False
        self._derived.strongest = (scores, count, scored)
        return scored


def _members(values: I64, wanted: I64) -> npt.NDArray[np.bool_]:
    """``np.isin(values, wanted)`` for a few hundred values and a page of titles, by a
    sorted search: isin's general-purpose setup cost more than the rest of the
    request's reasons."""
    if len(wanted) == 0:
        return np.zeros(len(values), dtype=bool)
    ordered = np.sort(wanted)
    at = np.searchsorted(ordered, values)
    np.minimum(at, len(ordered) - 1, out=at)
    hit: npt.NDArray[np.bool_] = ordered[at] == values
    return hit
