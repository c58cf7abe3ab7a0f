"""Cell-level knowledge the recommender reads: transitions, preferences, trends, penalties.

Two sources feed it: the device's own patterns (local) and the consolidated patterns the
constellation released (collective). Both are kept as dense arrays over the K codebook
cells so scoring is a few array lookups.

Where both speak about one transition (a → b), ``strategy`` decides how they combine
(the per-pair form of ``omega.sync.conflicts``): ``merge`` pools both (the default);
``viewer-wins`` drops the crowd's pair where the device has ≥ ``min_support`` episodes of
it; ``omega-wins`` drops the device's pair where the crowd has it; ``quality-wins`` keeps
the side with the higher success rate.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from omega.brain.config import ConflictStrategy
from omega.brain.patterns import PatternStat
from omega.protocol.messages import ConsolidatedPattern, Trend

__all__ = ["CellKnowledge"]

F32 = npt.NDArray[np.float32]
#: The most recent-cell lists whose next scores are kept between changes.
_ANSWERS = 16


class CellKnowledge:
    def __init__(
        self, k: int, *, strategy: ConflictStrategy = "merge", min_support: int = 3
    ) -> None:
        self.k = k
        self.strategy: ConflictStrategy = strategy
        self.min_support = min_support
        self.local_next = np.zeros((k, k), dtype=np.float32)
        # Per-pair evidence the strategy compares, (support, rate) on each side; merge
        # needs none, so a fleet of default brains does not pay for it.
        side = k if strategy != "merge" else 1
        self.local_next_evidence = np.zeros((2, side, side), dtype=np.float32)
        self.crowd_next_evidence = np.zeros((2, side, side), dtype=np.float32)
        self._next_views: tuple[F32, F32] | None = None
        self.local_pref = np.zeros(k, dtype=np.float32)
        self.local_avoid = np.zeros(k, dtype=np.float32)
        self.crowd_next = np.zeros((k, k), dtype=np.float32)
        self.crowd_pref: dict[tuple[str, str], F32] = {}
        self.crowd_avoid = np.zeros(k, dtype=np.float32)
        self.trend = np.zeros(k, dtype=np.float32)
        self.collective_patterns = 0
        # What the reads below answered since the knowledge last changed: a home screen
        # redrawn asks them again, with the same recent cells and context. Read-only, as
        # they are handed out again.
        self._next_answers: dict[tuple[tuple[int, float], ...], tuple[F32, F32]] = {}
        self._blend_answers: dict[tuple[tuple[tuple[int, float], ...], float], F32] = {}
        self._crowd_answers: dict[tuple[str, str], F32] = {}
        self._avoid_answer: F32 | None = None

    def _changed(self, *, next_: bool = True, crowd: bool = True, avoid: bool = True) -> None:
        """Forget the answers kept from arrays about to change: the transitions (``next_``),
        the crowd's preferences and trends (``crowd``), the avoided cells (``avoid``)."""
        if next_:
            self._next_answers.clear()
            self._blend_answers.clear()
        if crowd:
            self._crowd_answers.clear()
        if avoid:
            self._avoid_answer = None

    # -- local ---------------------------------------------------------------------------
    def learn_local(self, stat: PatternStat) -> None:
        """Refresh the arrays from one local pattern (called as it changes)."""
        task, cells, bucket, _ = stat.key
        if any(c >= self.k for c in cells):
            return
        # Nearly every event changes a local pattern: only the answers read from the array
        # it changes are forgotten (the device's preferences are read by none).
        self._changed(next_=task == "recommendation", crowd=False, avoid=task == "behaviour")
        # Evidence-weighted success: a rate backed by more episodes counts for more.
        value = float(stat.successes) / (1.0 + stat.support) * np.log1p(stat.support)
        if task == "recommendation":
            self.local_next[cells[0], cells[1]] = value
            if self.strategy != "merge":
                self.local_next_evidence[:, cells[0], cells[1]] = (stat.support, stat.success_rate)
                self._next_views = None
        elif task == "preference" and bucket == "any":
            self.local_pref[cells[0]] = value
        elif task == "behaviour":
            self.local_avoid[cells[0]] = stat.quality * np.log1p(stat.support)

    def forget_local(self, keys: Iterable[tuple[str, tuple[int, ...], str, str]]) -> None:
        """Drop pruned patterns from the arrays (cheaper than rebuilding from all)."""
        self._changed(crowd=False)
        for task, cells, bucket, _ in keys:
            if any(c >= self.k for c in cells):
                continue
            if task == "recommendation":
                self.local_next[cells[0], cells[1]] = 0.0
                if self.strategy != "merge":
                    self.local_next_evidence[:, cells[0], cells[1]] = 0.0
                    self._next_views = None
            elif task == "preference" and bucket == "any":
                self.local_pref[cells[0]] = 0.0
            elif task == "behaviour":
                self.local_avoid[cells[0]] = 0.0

    def rebuild_local(self, stats: Iterable[PatternStat]) -> None:
        self._changed(crowd=False)
        self.local_next[:] = 0
        self.local_next_evidence[:] = 0
        self._next_views = None
        self.local_pref[:] = 0
        self.local_avoid[:] = 0
        for stat in stats:
            self.learn_local(stat)

    # -- collective ----------------------------------------------------------------------
    def rebuild_collective(
        self, patterns: Iterable[ConsolidatedPattern], trends: Iterable[Trend]
    ) -> None:
        self._changed()
        self.crowd_next[:] = 0
        self.crowd_next_evidence[:] = 0
        self._next_views = None
        self.crowd_avoid[:] = 0
        self.crowd_pref = {}
        count = 0
        for p in patterns:
            if any(c >= self.k or c < 0 for c in p.cells):
                continue
            count += 1
            value = float(p.weight) * float(p.success_rate)
            if p.task == "recommendation" and len(p.cells) == 2:
                self.crowd_next[p.cells[0], p.cells[1]] += value
                if self.strategy != "merge":
                    evidence = (p.support, p.success_rate)
                    self.crowd_next_evidence[:, p.cells[0], p.cells[1]] = evidence
            elif p.task in ("preference", "discovery"):
                ctx = (p.context.time_bucket, p.context.day_type)
                arr = self.crowd_pref.setdefault(ctx, np.zeros(self.k, dtype=np.float32))
                arr[p.cells[0]] += value
            elif p.task == "behaviour":
                self.crowd_avoid[p.cells[0]] += float(p.weight) * (1.0 - float(p.success_rate))
        self.trend[:] = 0
        for t in trends:
            if 0 <= t.cell < self.k:
                self.trend[t.cell] = max(0.0, float(t.score))
        self.collective_patterns = count

    # -- combining -----------------------------------------------------------------------
    def next_views(self) -> tuple[F32, F32]:
        """(crowd, local) transition matrices after the conflict strategy."""
        if self.strategy == "merge":
            return self.crowd_next, self.local_next
        if self._next_views is None:
            self._next_views = self._resolve_next()
        return self._next_views

    def _resolve_next(self) -> tuple[F32, F32]:
        crowd, local = self.crowd_next, self.local_next
        local_support, local_rate = self.local_next_evidence
        crowd_support, crowd_rate = self.crowd_next_evidence
        zero = np.float32(0)
        if self.strategy == "viewer-wins":
            return np.where(local_support >= self.min_support, zero, crowd), local
        if self.strategy == "omega-wins":
            return crowd, np.where(crowd > 0, zero, local)
        # quality-wins: where both have the pair, the higher rate (then support; then ours).
        both = (crowd > 0) & (local_support > 0)
        ours = (local_rate > crowd_rate) | (
            (local_rate == crowd_rate) & (local_support >= crowd_support)
        )
        return np.where(both & ours, zero, crowd), np.where(both & ~ours, zero, local)

    # -- reading -------------------------------------------------------------------------
    def next_scores(self, recent_cells: list[tuple[int, float]]) -> tuple[F32, F32]:
        """(crowd, local) scores per cell for what follows the recent cells (cell, weight):
        Σ weight · (the cell's transition row / its sum), rows summing to 0 left out."""
        return self._next_for(tuple((c, w) for c, w in recent_cells if 0 <= c < self.k))

    def next_blend(self, recent_cells: list[tuple[int, float]], local_weight: float) -> F32:
        """The crowd's :meth:`next_scores` plus ``local_weight`` times the device's, in
        float32 (kept, read-only, like them)."""
        known = tuple((c, w) for c, w in recent_cells if 0 <= c < self.k)
        held = self._blend_answers.get((known, local_weight))
        if held is not None:
            return held
        crowd, local = self._next_for(known)
        out = (crowd + np.float32(local_weight) * local).astype(np.float32, copy=False)
        if len(self._blend_answers) >= _ANSWERS:
            self._blend_answers.clear()
        self._blend_answers[known, local_weight] = _read_only(out)
        return out

    def _next_for(self, known: tuple[tuple[int, float], ...]) -> tuple[F32, F32]:
        held = self._next_answers.get(known)
        if held is not None:
            return held
        crowd_next, local_next = self.next_views()
        if not known:
            answer = np.zeros(self.k, dtype=np.float32), np.zeros(self.k, dtype=np.float32)
        else:
            cells = np.fromiter((c for c, _ in known), dtype=np.int64, count=len(known))
            weights = np.fromiter((w for _, w in known), dtype=np.float32, count=len(known))
            answer = _follow(crowd_next, cells, weights), _follow(local_next, cells, weights)
        if len(self._next_answers) >= _ANSWERS:
            self._next_answers.clear()
        self._next_answers[known] = (_read_only(answer[0]), _read_only(answer[1]))
        return answer

    def crowd_scores(self, time_bucket: str, day_type: str) -> F32:
        """What the crowd likes in this context, plus what is trending."""
        held = self._crowd_answers.get((time_bucket, day_type))
        if held is not None:
            return held
        out = np.zeros(self.k, dtype=np.float32)
        for ctx, weight in (((time_bucket, day_type), 1.0), (("any", "any"), 0.5)):
            arr = self.crowd_pref.get(ctx)
            if arr is not None and arr.max() > 0:
                out += np.float32(weight) * arr / arr.max()
        if self.trend.max() > 0:
            out += np.float32(0.5) * self.trend / self.trend.max()
        self._crowd_answers[time_bucket, day_type] = _read_only(out)  # a handful of contexts
        return out

    def avoid_scores(self) -> F32:
        if self._avoid_answer is not None:
            return self._avoid_answer
        out = self.local_avoid.copy()
        if self.crowd_avoid.max() > 0:
            out += np.float32(0.3) * self.crowd_avoid / self.crowd_avoid.max()
        self._avoid_answer = _read_only(out)
        return out


def _read_only(array: F32) -> F32:
    array.flags.writeable = False
    return array


def _follow(transitions: F32, cells: npt.NDArray[np.int64], weights: F32) -> F32:
    """Σ over the given cells of weight · row / row sum, added in the cells' order (as a
    loop over them would: the same float32 result)."""
    rows = transitions[cells]
    totals = np.add.reduce(rows, axis=1)  # rows.sum without its Python layer
    used = totals > 0
    count = np.count_nonzero(used)
    if count == 0:
        return np.zeros(transitions.shape[1], dtype=np.float32)
    if count < len(used):
        rows, weights, totals = rows[used], weights[used], totals[used]
    share = weights[:, None] * rows / totals[:, None]
    # A running sum adds the rows one after another, as a loop would (np.sum would add
    # them pairwise), in one call (the ufunc's own: np.cumsum adds a Python layer).
    out: F32 = np.add.accumulate(share, axis=0)[-1]
    return out
