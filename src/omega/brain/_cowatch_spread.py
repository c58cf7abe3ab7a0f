"""A defence against forged co-watch pairs: a neighbour earns its count only as far as it
is followed by titles itself.

A coalition of attested TVs can release any pair it sends from ≥ k of its members, and
to promote a title it points the most watched titles at it (issue 20's promote-item
attack): the target then leads their rows, backed by the whole coalition. An honestly
watched title is also a *source*: the viewers who watched it went on to watch other
titles, so the released table holds its own row. A forged target has none (or one as
weak as its few real viewers). :func:`spread_capped` caps every pair's count at
``ratio`` × the neighbour's own best count as a source, and at ``floor`` at least (k: a
released pair is worth no less than the threshold it passed). A coalition can defeat it
by spending half its budget forging the target's own row: it slows the attack, it does
not stop a coalition that knows the rule (docs/cowatch.md).
"""

from __future__ import annotations

import numpy as np

from omega.brain._store_cowatch import CowatchRows

__all__ = ["spread_capped"]


def spread_capped(rows: CowatchRows, *, ratio: float, floor: float) -> CowatchRows:
    """``rows`` with each count ≤ max(``floor``, ``ratio`` × the neighbour's best count
    in its own row); ``ratio`` 0 returns ``rows`` unchanged."""
    if ratio <= 0 or not len(rows):
        return rows
    size = int(max(rows.sources.max(), rows.neighbours.max())) + 1
    best = np.zeros(size, np.float32)
    np.maximum.at(best, rows.sources, rows.counts)
    cap = np.maximum(np.float32(floor), np.float32(ratio) * best[rows.neighbours])
    return CowatchRows(rows.sources, rows.neighbours, np.minimum(rows.counts, cap))
