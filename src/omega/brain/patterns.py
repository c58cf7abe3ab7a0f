"""Patterns (ReasoningBank): shareable rules learned from episodes.

Keys name content by codebook cell (see ``omega.protocol.messages``), never by item:

- ``preference`` (c)   in a context, content in cell c succeeds at rate s;
- ``recommendation`` (a, b)   after content in a, content in b succeeds next;
- ``discovery`` (c)    content in a cell new to the viewer succeeded;
- ``behaviour`` (c)    content in c gets abandoned or skipped: its success rate is the
  viewer's (low) success there, and its *quality* — how reliably it holds — is 1 − that.

A pattern may leave the device only with quality ≥ min_quality (for every task but
behaviour, quality is the success rate) and support ≥ min_support distinct episodes.
Changes to shareable patterns go to the outbox; the bank is bounded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from omega.protocol.messages import Pattern, PatternContext, TaskType

__all__ = ["PatternBank", "PatternKey", "PatternStat", "parse_cells", "pattern_id"]

PatternKey = tuple[str, tuple[int, ...], str, str]  # task, cells, time bucket, day type


_ids: dict[PatternKey, str] = {}


def parse_cells(text: str) -> tuple[int, ...]:
    """Cells as the brain's database stores them: comma-separated text."""
    return tuple(int(c) for c in text.split(",") if c)


def pattern_id(key: PatternKey) -> str:
    """A stable short id for a pattern key (cached: it is asked for on every event)."""
    found = _ids.get(key)
    if found is not None:
        return found
    if len(_ids) > 200_000:
        _ids.clear()
    task, cells, bucket, day = key
    text = f"{task}|{','.join(map(str, cells))}|{bucket}|{day}"
    found = _ids[key] = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    return found


@dataclass(slots=True)
class PatternStat:
    key: PatternKey
    successes: float = 0.0
    support: int = 0
    version: int = 0
    updated_at: float = 0.0
    shared_rate: float = -1.0  # rate last queued for push; -1 = not shared
    shared_support: int = 0

    @property
    def id(self) -> str:
        return pattern_id(self.key)

    @property
    def success_rate(self) -> float:
        return self.successes / self.support if self.support else 0.0

    @property
    def quality(self) -> float:
        """How reliably the pattern holds: success, or for abandonment 1 − success."""
        rate = self.success_rate
        return 1.0 - rate if self.key[0] == "behaviour" else rate

    def to_message(self) -> Pattern:
        task, cells, bucket, day = self.key
        return Pattern(
            id=self.id,
            task=task,  # type: ignore[arg-type]
            cells=cells,
            context=PatternContext(time_bucket=bucket, day_type=day),  # type: ignore[arg-type]
            success_rate=round(min(1.0, max(0.0, self.success_rate)), 4),
            support=self.support,
            version=max(1, self.version),
        )


class PatternBank:
    """The device's patterns, in memory; the store persists them at each flush."""

    def __init__(self, *, min_quality: float, min_support: int, max_patterns: int) -> None:
        self.min_quality = min_quality
        self.min_support = min_support
        self.max_patterns = max_patterns
        self._stats: dict[str, PatternStat] = {}
        self._dirty: set[str] = set()
        self._seen_cells: set[int] = set()

    # -- learning ------------------------------------------------------------------
    def learn(
        self,
        *,
        cell: int,
        previous_cell: int | None,
        success: bool,
        negative: bool,
        bucket: str,
        day: str,
        now: float,
    ) -> list[PatternStat]:
        """Fold one item episode into every pattern it supports; return those patterns."""
        keys: list[tuple[PatternKey, bool]] = []
        if negative:
            keys.append((("behaviour", (cell,), "any", "any"), False))
        keys.append((("preference", (cell,), bucket, day), success))
        keys.append((("preference", (cell,), "any", "any"), success))
        if previous_cell is not None:
            keys.append((("recommendation", (previous_cell, cell), "any", "any"), success))
        if cell not in self._seen_cells and not negative:
            keys.append((("discovery", (cell,), "any", "any"), success))
        if not negative:
            self._seen_cells.add(cell)
        return [self._bump(key, hit, now) for key, hit in keys]

    def _bump(self, key: PatternKey, hit: bool, now: float) -> PatternStat:
        pid = pattern_id(key)
        stat = self._stats.get(pid)
        if stat is None:
            stat = self._stats[pid] = PatternStat(key)
        stat.support += 1
        stat.successes += 1.0 if hit else 0.0
        stat.updated_at = now
        self._dirty.add(pid)
        return stat

    # -- sharing -----------------------------------------------------------------------
    def shareable(self, stat: PatternStat) -> bool:
        return stat.support >= self.min_support and stat.quality >= self.min_quality

    def export(self, min_quality: float | None = None) -> list[Pattern]:
        floor = self.min_quality if min_quality is None else min_quality
        return [
            s.to_message()
            for s in self._stats.values()
            if s.support >= self.min_support and s.quality >= floor
        ]

    def outbox_changes(self) -> list[tuple[str, str]]:
        """(pattern id, 'upsert' | 'remove') for dirty patterns whose shared view changed.

        A shared pattern is re-sent only on a meaningful change (rate moved ≥ 0.05 or support
        grew ≥ 25%), which keeps pushes near 1 KB.
        """
        changes: list[tuple[str, str]] = []
        for pid in self._dirty:
            stat = self._stats.get(pid)
            if stat is None:
                continue
            shared = stat.shared_rate >= 0
            if self.shareable(stat):
                moved = abs(stat.success_rate - stat.shared_rate) >= 0.05
                grew = stat.support >= 1.25 * max(1, stat.shared_support)
                if not shared or moved or grew:
                    stat.version += 1
                    stat.shared_rate = stat.success_rate
                    stat.shared_support = stat.support
                    changes.append((pid, "upsert"))
            elif shared:
                stat.shared_rate = -1.0
                stat.shared_support = 0
                changes.append((pid, "remove"))
        return changes

    def take_dirty(self) -> list[PatternStat]:
        dirty = [self._stats[p] for p in self._dirty if p in self._stats]
        self._dirty.clear()
        return dirty

    # -- bounds --------------------------------------------------------------------------
    def prune(self, now: float, *, stale_after: float) -> tuple[list[PatternStat], list[str]]:
        """Drop stale one-off patterns and, over the bound, the least valuable.

        Returns (the deleted patterns, ids that had been shared and so need a removal pushed).
        """
        doomed = {
            pid
            for pid, s in self._stats.items()
            if s.support < self.min_support and now - s.updated_at > stale_after
        }
        overflow = len(self._stats) - len(doomed) - self.max_patterns
        if overflow > 0:
            keep = (s for pid, s in self._stats.items() if pid not in doomed)
            ranked = sorted(keep, key=lambda s: (self.shareable(s), s.support, s.updated_at))
            doomed.update(s.id for s in ranked[:overflow])
        deleted, shared = [], []
        for pid in doomed:
            stat = self._stats.pop(pid)
            self._dirty.discard(pid)
            deleted.append(stat)
            if stat.shared_rate >= 0:
                shared.append(pid)
        return deleted, shared

    # -- access --------------------------------------------------------------------------
    def restore(self, stats: Iterable[PatternStat], seen_cells: Iterable[int]) -> None:
        for stat in stats:
            self._stats[stat.id] = stat
        self._seen_cells.update(seen_cells)

    def get(self, pid: str) -> PatternStat | None:
        return self._stats.get(pid)

    def __len__(self) -> int:
        return len(self._stats)

    def __iter__(self) -> Iterator[PatternStat]:
        return iter(self._stats.values())

    def by_task(self, task: TaskType) -> Iterator[PatternStat]:
        return (s for s in self._stats.values() if s.key[0] == task)
