"""A defence against forged co-watch pairs: a neighbour earns its count only as far as it
is followed by titles itself.

A coalition of attested TVs can release any pair it sends from ≥ k of its members, and
to promote a title it points the most watched titles at it (issue 20's promote-item
attack): the target then leads their rows, backed by the whole coalition. An honestly
watched title is also a *source*: the viewers who watched it went on to watch other
titles, so the released table holds its own row. A forged target has none (or one as
weak as its few real viewers). :func:`spread_capped` drops every pair whose count is
over ``ratio`` × the neighbour's own best count as a source and over ``floor`` (the
brain passes 0: a neighbour with no row of its own is dropped. At ``floor`` = k the
coalition's weaker pairs, backed by just k attackers, still led rows nothing honest
reached: 15 % of honest top-10s on the validation subset). A coalition can defeat it
by spending half its budget forging the target's own row: it slows the attack, it does
not stop a coalition that knows the rule (docs/cowatch.md).
"""

from __future__ import annotations

import numpy as np

from omega.brain._store_cowatch import CowatchRows

__all__ = ["spread_capped"]


def spread_capped(rows: CowatchRows, *, ratio: float, floor: float) -> CowatchRows:
    """``rows`` with each count ≤ max(``floor``, ``ratio`` × the neighbour's best count
    in its own row), and without the pairs whose count was over that: capping alone
    would not do, as the brain divides each row by its sum (a forged neighbour alone in
    a row would still take all of it). ``ratio`` 0 returns ``rows`` unchanged."""
    if ratio <= 0 or not len(rows):
        return rows
    size = int(max(rows.sources.max(), rows.neighbours.max())) + 1
    best = np.zeros(size, np.float32)
    np.maximum.at(best, rows.sources, rows.counts)
    cap = np.maximum(np.float32(floor), np.float32(ratio) * best[rows.neighbours])
    keep = rows.counts <= cap
    return CowatchRows(rows.sources[keep], rows.neighbours[keep], rows.counts[keep])
