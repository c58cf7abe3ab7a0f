"""What a brain learns from viewing: memory tiers, patterns, cell knowledge, skills and the
titles just watched.

:class:`Learner` is the brain's part for the reflexive loop — one episode updates the
tiers, the pattern bank and the cell knowledge (:meth:`Learner.learn`) — and for the
state it derives: which titles the household has seen, the collective tier the
constellation's release fills, and what a flush persists. It reads titles through the
:class:`~omega.brain.catalog.Catalog` it is handed and never touches the index.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from omega.brain._store_learning import LearnedTables
from omega.brain._store_sync import ReleaseTables
from omega.brain.catalog import Catalog
from omega.brain.config import BrainConfig
from omega.brain.episodes import EpisodeRow
from omega.brain.knowledge import CellKnowledge
from omega.brain.patterns import PatternBank, PatternStat
from omega.brain.skills import SkillLibrary
from omega.brain.tiers import LOCAL_TIERS, MemoryTiers
from omega.protocol import EMBEDDING_DIM
from omega.protocol.messages import ConsolidatedPattern, Trend

__all__ = ["Learner", "RecentTitle"]

#: Titles remembered as "just watched" (the recommender reads the last ten distinct).
RECENT = 20


@dataclass(frozen=True, slots=True)
class RecentTitle:
    """A title the household started: its key, when, and how much they liked it."""

    key: int
    ts: float
    reward: float


class Learner:
    """Tiers, pattern bank, cell knowledge, skills and recent titles of one brain."""

    def __init__(self, config: BrainConfig, k: int) -> None:
        self.config = config
        self.tiers = MemoryTiers(EMBEDDING_DIM, config.half_lives)
        self.skills = SkillLibrary()
        self.recent: deque[RecentTitle] = deque(maxlen=RECENT)
        self.interacted: set[int] = set()  # keys watched, skipped or rated
        self.bank = self._new_bank()
        self.knowledge = self._new_knowledge(k)
        self._seen: npt.NDArray[np.bool_] | None = None
        self._seen_for: Catalog | None = None
        self._popular: npt.NDArray[np.float32] | None = None
        self._popular_for: tuple[Catalog, int] | None = None

    def _new_bank(self) -> PatternBank:
        return PatternBank(
            min_quality=self.config.min_quality,
            min_support=self.config.min_support,
            max_patterns=self.config.max_patterns,
        )

    def _new_knowledge(self, k: int) -> CellKnowledge:
        return CellKnowledge(
            k, strategy=self.config.conflict_strategy, min_support=self.config.min_support
        )

    # -- opening -----------------------------------------------------------------------
    def restore(self, tables: LearnedTables) -> None:
        """Read what the last flush persisted: tiers, patterns and skills."""
        for tier in tables.load_tiers():
            self.tiers.load(tier.name, tier.vector, tier.mass, tier.updated_at)
        stats = tables.load_patterns()
        self.bank.restore(stats, {s.key[1][0] for s in stats if s.key[0] == "preference"})
        self.knowledge.rebuild_local(self.bank)
        self.skills.stats.update(tables.load_skills())

    def relearn(self, k: int) -> None:
        """Start the patterns afresh in ``k`` new cells (a new codebook); the caller
        replays the stored episodes through :meth:`learn`."""
        self.knowledge = self._new_knowledge(k)
        self.bank = self._new_bank()
        self.recent.clear()

    # -- the reflexive loop ------------------------------------------------------------
    def learn(self, episode: EpisodeRow, catalog: Catalog) -> None:
        """One episode updates the tiers, the patterns and the cell knowledge."""
        if episode.item_key is None or episode.kind == "browse":
            return
        row = catalog.row_of_key.get(episode.item_key)
        if row is None:
            return  # the title has left the catalog since
        if episode.kind in ("view", "skip", "rating"):
            self.interacted.add(episode.item_key)
            if self._seen is not None and self._seen_for is catalog:
                self._seen[row] = True
        self.tiers.observe(catalog.matrix[row], episode.reward, episode.ts)
        cell = int(catalog.cells[row])
        negative = episode.kind == "skip" or episode.reward < 0.3
        if cell >= 0:
            previous = None if negative else self._previous_cell(episode, catalog)
            changed = self.bank.learn(
                cell=cell,
                previous_cell=previous,
                success=episode.success,
                negative=negative,
                bucket=episode.time_bucket,
                day=episode.day_type,
                now=episode.ts,
            )
            for stat in changed:
                self.knowledge.learn_local(stat)
        self.note_recent(episode)

    def _previous_cell(self, episode: EpisodeRow, catalog: Catalog) -> int | None:
        """The cell of the title watched just before, within the transition window."""
        if not self.recent:
            return None
        last = self.recent[-1]
        last_row = catalog.row_of_key.get(last.key)
        if (
            last_row is None
            or last.key == episode.item_key
            or episode.ts - last.ts > self.config.transition_window
        ):
            return None
        cell = int(catalog.cells[last_row])
        return cell if cell >= 0 else None

    def note_recent(self, episode: EpisodeRow) -> None:
        # Every title started counts as recent (weighted by reward when scoring); skips don't.
        if episode.item_key is None or episode.kind in ("skip", "browse"):
            return
        self.recent.append(RecentTitle(episode.item_key, episode.ts, episode.reward))

    def seen(self, catalog: Catalog) -> npt.NDArray[np.bool_]:
        """Catalog rows already watched or skipped, as a mask (cached per catalog)."""
        if self._seen is None or self._seen_for is not catalog:
            self._seen = np.zeros(len(catalog), dtype=bool)
            self._seen_for = catalog
            if self.interacted:
                self._seen[catalog.rows_for_keys(sorted(self.interacted))] = True
        return self._seen

    # -- collective knowledge ----------------------------------------------------------
    def popular(self, catalog: Catalog, releases: ReleaseTables) -> npt.NDArray[np.float32]:
        """The released popularity per catalog row, 0 for titles not listed (cached until
        the catalog or the list changes). Scores are stored by item id: rows move when
        the catalog changes."""
        generation = releases.popular_generation
        held = self._popular_for
        if self._popular is None or held is None or held[0] is not catalog or held[1] != generation:
            scores = np.zeros(len(catalog), dtype=np.float32)
            for item_id, score in releases.popular().items():
                key = catalog.key_of_id.get(item_id)
                row = None if key is None else catalog.row_of_key.get(key)
                if row is not None:
                    scores[row] = score
            scores.flags.writeable = False  # shared by every request until it changes
            self._popular, self._popular_for = scores, (catalog, generation)
        return self._popular

    def refresh_collective(
        self,
        patterns: Sequence[ConsolidatedPattern],
        trends: Sequence[Trend],
        centroids: npt.NDArray[np.float32] | None,
        now: float,
    ) -> None:
        """Rebuild the crowd's cell knowledge and the collective tier from a release."""
        self.knowledge.rebuild_collective(patterns, trends)
        if centroids is None:
            return
        weights = np.zeros(len(centroids), dtype=np.float32)
        for p in patterns:
            if p.task == "preference" and p.cells and 0 <= p.cells[0] < len(weights):
                weights[p.cells[0]] += float(p.weight) * float(p.success_rate)
        if weights.sum() > 0:
            vector = (weights / weights.sum()) @ centroids
            self.tiers.set_collective(vector, float(weights.sum()), now)

    # -- persisting --------------------------------------------------------------------
    def flush(self, conn: sqlite3.Connection, tables: LearnedTables) -> None:
        """Write the changed patterns, the local tiers and the changed skills."""
        tables.save_patterns(conn, self.bank.take_dirty(), [])
        tables.save_tiers(conn, (self.tiers[name] for name in LOCAL_TIERS))
        if self.skills.dirty:
            tables.save_skills(conn, {key: self.skills.stats[key] for key in self.skills.dirty})
            self.skills.dirty.clear()

    def prune(self, now: float, *, stale_after: float) -> tuple[list[PatternStat], list[str]]:
        """Drop stale and surplus patterns: (deleted, ids the constellation holds)."""
        deleted, shared = self.bank.prune(now, stale_after=stale_after)
        self.knowledge.forget_local(stat.key for stat in deleted)
        return deleted, shared
