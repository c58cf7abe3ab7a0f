"""The last request's candidate signals, kept for the next request that scores the same
candidates from the same inputs: a home screen redrawn with nothing changed in between.

Gathering the candidates' vectors and multiplying them with the recent titles and the
tiers' tastes is most of a request's work. What :func:`~omega.brain.recommend.signal_rows`
reads is compared before it is skipped: the catalog snapshot (immutable), the signals
scored, the candidate rows and the recent titles by value, and by identity the arrays
the brain keeps read-only between changes — each tier's unit vector, cell knowledge's
next, crowd and avoid scores, the released popularity and the co-watch scores. Whatever
changes one of them (an event, a release, a co-watch page, a new session) makes a new
array, so the same array is an unchanged input. The signals handed out again are
read-only.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from omega.brain.catalog import Catalog
from omega.brain.recommend import ScoringState, signal_rows

__all__ = ["KeptSignals"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
#: The tiers whose tastes the signals read (the evolutionary one when there is no
#: semantic taste).
_TIERS = ("instant", "episodic", "semantic", "evolutionary")
#: Candidate sets kept at once: a home screen's rows ask with different filters.
_KEPT = 8

Signals = tuple[dict[str, F32], F32]


class KeptSignals:
    """One brain's last candidate signals (used under the brain's lock)."""

    def __init__(self) -> None:
        self._inputs: tuple[object, ...] = ()
        self._held: dict[tuple[bytes, tuple[tuple[int, float], ...]], Signals] = {}

    def signal_rows(self, catalog: Catalog, rows: I64, state: ScoringState) -> Signals:
        """:func:`~omega.brain.recommend.signal_rows`, or what it answered before for the
        same rows from the same inputs."""
        inputs = (
            catalog,
            state.signals,
            *(_kept(a) for a in (state.next_cells, state.crowd_cells, state.popular)),
            _kept(state.cowatch),
            state.knowledge.avoid_scores(),
            *(state.tiers.get(name) for name in _TIERS),
        )
        if len(inputs) != len(self._inputs) or any(
            a is not b for a, b in zip(inputs, self._inputs, strict=True)
        ):
            self._held.clear()  # something changed: nothing kept holds
            self._inputs = inputs
        key = (rows.tobytes(), tuple(state.recent_rows))
        held = self._held.get(key)
        if held is not None:
            return held
        signals, penalty = signal_rows(catalog, rows, state)
        for values in (*signals.values(), penalty):
            values.flags.writeable = False
        if len(self._held) >= _KEPT:
            self._held.clear()
        self._held[key] = signals, penalty
        return signals, penalty


def _kept(values: F32) -> F32 | None:
    """An input as compared: by identity, but an empty array (none known) as None."""
    return values if len(values) else None
