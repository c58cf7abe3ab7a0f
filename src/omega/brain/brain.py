"""One TV's brain: the facade a TV app embeds.

It owns a directory with ``brain.db`` (SQLite) and ``index.usearch`` (the vector index).
Learning happens on every event (tiers, patterns); flushes persist derived state in
batches with a watermark, and reopening replays the episodes tracked after it, so a crash
loses nothing that was tracked.

This module holds the lifecycle, tracking, learning and consolidation; the catalog and
codebook operations are in ``_catalog_ops`` and recommending (with the skills'
self-tests) in ``_recommending``, mixed into :class:`Brain`.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from omega.brain import episodes as ep
from omega.brain._catalog_ops import DIM, INDEX_FILE, CatalogOps
from omega.brain._popular import save_popular
from omega.brain._recommending import Recommending
from omega.brain.catalog import Catalog, SharedCatalog
from omega.brain.config import DAY, BrainConfig
from omega.brain.episodes import Context, Episode, context_at
from omega.brain.index import VectorIndex
from omega.brain.knowledge import CellKnowledge
from omega.brain.patterns import PatternBank
from omega.brain.skills import SkillLibrary, SkillStat
from omega.brain.store import BrainStore, EpisodeRow
from omega.brain.tiers import LOCAL_TIERS, MemoryTiers
from omega.clock import Clock, SystemClock
from omega.errors import ConfigError
from omega.protocol.messages import ConsolidatedPattern, ItemScore, Pattern, Trend

if TYPE_CHECKING:
    from omega.brain.embedder import Embedder

__all__ = ["DIM", "Brain", "Tracked"]

log = logging.getLogger(__name__)
_DB_FILE = "brain.db"
_BLAS_LIMITED = False  # BLAS is held to one thread once per process


@dataclass(frozen=True, slots=True)
class Tracked:
    """What tracking an event stored."""

    episode_id: int
    kind: str
    reward: float
    success: bool
    critique: str
    context: Context


class Brain(CatalogOps, Recommending):
    """Use :meth:`open`; close it (or use ``with``) to flush."""

    def __init__(
        self,
        directory: Path,
        store: BrainStore,
        *,
        config: BrainConfig,
        clock: Clock,
        embedder: Embedder | None,
        shared: SharedCatalog | None = None,
    ) -> None:
        self.directory = directory
        self.shared = shared
        self.store = store
        self.config = config
        self.clock = clock
        self._embedder = embedder
        self._lock = threading.RLock()
        self.tiers = MemoryTiers(DIM, config.half_lives)
        self.bank = PatternBank(
            min_quality=config.min_quality,
            min_support=config.min_support,
            max_patterns=config.max_patterns,
        )
        self.skills = SkillLibrary()
        self.index = VectorIndex(DIM)
        self.catalog = Catalog([], np.zeros((0, DIM), np.float32), config.codebook_cells)
        self.centroids: npt.NDArray[np.float32] | None = None
        self.codebook_id = ""
        self.knowledge = self._new_knowledge(config.codebook_cells)
        self._recent: deque[tuple[int, float, float]] = deque(maxlen=20)  # key, ts, reward
        self._interacted: set[int] = set()
        self._last_event_ts = 0.0
        self._session_id = ""
        self._applied_episode = 0
        self._since_flush = 0
        self._catalog_dirty = False
        self._offer: tuple[float, str, str, frozenset[int]] | None = None
        self.index_rebuilt = False
        self._closed = False
        self._seen: npt.NDArray[np.bool_] | None = None
        self._popular: npt.NDArray[np.float32] | None = None  # per catalog row, cached
        self._consolidated = (0.0, 0.0)  # when the daily and weekly loops last ran

    def _new_knowledge(self, k: int) -> CellKnowledge:
        return CellKnowledge(
            k, strategy=self.config.conflict_strategy, min_support=self.config.min_support
        )

    # -- lifecycle -----------------------------------------------------------------------
    @staticmethod
    def _one_blas_thread() -> None:
        """Scoring multiplies small matrices; handing those to BLAS worker threads costs
        more than it saves, and on a busy CPU a waiting worker stalls a request for ms."""
        global _BLAS_LIMITED
        if not _BLAS_LIMITED:
            from threadpoolctl import threadpool_limits

            threadpool_limits(1, user_api="blas")
            _BLAS_LIMITED = True

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        config: BrainConfig | None = None,
        clock: Clock | None = None,
        embedder: Embedder | None = None,
        create: bool = True,
        shared_catalog: SharedCatalog | None = None,
    ) -> Brain:
        """Open (or with ``create``, initialise) the brain in ``directory`` — a warm start.

        With ``shared_catalog`` the brain reads titles, vectors, index and codebook from it
        instead of its own database (a fleet in one process shares one copy)."""
        cls._one_blas_thread()
        path = Path(directory)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{path} exists and is not a directory")
        if not path.exists():
            if not create:
                raise ConfigError(f"no brain at {path} (run `omega brain init {path}` first)")
            try:
                path.mkdir(parents=True)
            except OSError as exc:
                raise ConfigError(f"cannot create brain directory {path}: {exc}") from exc
        if not os.access(path, os.W_OK):
            raise ConfigError(f"brain directory {path} is not writable")
        db = path / _DB_FILE
        if not create and not db.exists():
            raise ConfigError(f"{path} holds no brain (missing {_DB_FILE})")
        store = BrainStore(db)
        brain = cls(
            path,
            store,
            config=config or BrainConfig(),
            clock=clock or SystemClock(),
            embedder=embedder,
            shared=shared_catalog,
        )
        try:
            brain._restore()
        except BaseException:
            store.close()
            raise
        return brain

    def close(self) -> None:
        """Flush and close; closing twice is harmless."""
        with self._lock:
            if self._closed:
                return
            self.flush()
            self.store.close()
            self._closed = True

    def __enter__(self) -> Brain:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _restore(self) -> None:
        if self.shared is not None:
            self.codebook_id, self.centroids = self.shared.codebook_id, self.shared.centroids
            self.knowledge = self._new_knowledge(len(self.centroids))
            self.catalog, self.index = self.shared.catalog, self.shared.index
        else:
            self._restore_own_catalog()
        self._restore_learning()

    def _restore_learning(self) -> None:
        for name, blob, mass, updated in self.store.load_tiers():
            self.tiers.load(name, np.frombuffer(blob, dtype=np.float32), mass, updated)
        stats = self.store.load_patterns()
        self.bank.restore(stats, {s.key[1][0] for s in stats if s.key[0] == "preference"})
        self.knowledge.rebuild_local(self.bank)
        for name, context, uses, successes, updated in self.store.load_skills():
            self.skills.stats[(name, context)] = SkillStat(uses, successes, updated)
        self._refresh_collective(*self.store.load_collective())
        self._applied_episode = int(self.store.get_meta("applied_episode", "0") or 0)
        self._consolidated = (
            float(self.store.get_meta("consolidated_daily", "0") or 0),
            float(self.store.get_meta("consolidated_weekly", "0") or 0),
        )
        self._interacted = self.store.interacted_item_keys()
        recent = self.store.recent_episodes(40)
        if recent:
            self._last_event_ts, self._session_id = recent[0].ts, recent[0].session_id
        for episode in reversed(recent):
            if episode.id <= self._applied_episode:
                self._note_recent(episode)
        # Replay what was tracked after the last flush: a crash loses no learning.
        for episode in self.store.episodes_after(self._applied_episode):
            self._learn(episode)
            self._applied_episode = episode.id

    # -- tracking ------------------------------------------------------------------------
    def track_view(
        self,
        item_id: str,
        *,
        watch_fraction: float | None = None,
        duration_s: float | None = None,
        completed: bool = False,
    ) -> Tracked:
        key = self.item_key(item_id)
        row = self.catalog.rows[self.catalog.row_of_key[key]]
        runtime = row.runtime_min * 60.0 if row.runtime_min else None
        episode = ep.view_episode(
            item_id,
            watch_fraction=watch_fraction,
            duration_s=duration_s,
            runtime_s=runtime,
            completed=completed,
        )
        return self._track(episode, key)

    def track_skip(self, item_id: str, *, at_seconds: float = 0.0) -> Tracked:
        key = self.item_key(item_id)
        return self._track(ep.skip_episode(item_id, at_seconds=at_seconds), key)

    def track_rating(self, item_id: str, stars: float) -> Tracked:
        key = self.item_key(item_id)
        return self._track(ep.rating_episode(item_id, stars=stars), key)

    def track_search(
        self, query: str, results: Sequence[str], selected: str | None = None
    ) -> Tracked:
        for item_id in results:
            self.item_key(item_id)
        episode = ep.search_episode(query, results=list(results), selected=selected)
        return self._track(episode, self.item_key(selected) if selected else None)

    def track_browse(self, items: Sequence[str]) -> Tracked:
        for item_id in items:
            self.item_key(item_id)
        return self._track(ep.browse_episode(list(items)), None)

    def _track(self, episode: Episode, key: int | None) -> Tracked:
        with self._lock:
            now = self.clock.now()
            if self._last_event_ts and now - self._last_event_ts > self.config.session_gap:
                self.end_session(now=now)
            if not self._session_id:
                self._session_id = uuid.uuid4().hex[:12]
            self._last_event_ts = now
            context = context_at(now, self._session_id)
            episode_id = self.store.insert_episode(
                ts=now,
                kind=episode.kind,
                item_key=key,
                session_id=self._session_id,
                time_bucket=context.time_bucket,
                day_type=context.day_type,
                reward=episode.reward,
                success=episode.success,
                critique=episode.critique,
                detail=episode.detail,
            )
            row = EpisodeRow(
                episode_id,
                now,
                episode.kind,
                key,
                self._session_id,
                context.time_bucket,
                context.day_type,
                episode.reward,
                episode.success,
                episode.critique,
                episode.detail,
            )
            self._credit_skill(row)
            self._self_test(row)
            self._learn(row)
            self._applied_episode = episode_id
            self._since_flush += 1
            if self._since_flush >= self.config.flush_every:
                self.flush()
            self._maybe_consolidate(now)
            return Tracked(
                episode_id, episode.kind, episode.reward, episode.success, episode.critique, context
            )

    def _learn(self, episode: EpisodeRow) -> None:
        """The reflexive loop: one episode updates tiers, patterns and cell knowledge."""
        if episode.item_key is None or episode.kind == "browse":
            return
        row = self.catalog.row_of_key.get(episode.item_key)
        if row is None:
            return  # the title has left the catalog since
        if episode.kind in ("view", "skip", "rating"):
            self._interacted.add(episode.item_key)
            if self._seen is not None and len(self._seen) == len(self.catalog):
                self._seen[row] = True
        self.tiers.observe(self.catalog.matrix[row], episode.reward, episode.ts)
        cell = int(self.catalog.cells[row])
        negative = episode.kind == "skip" or episode.reward < 0.3
        if cell >= 0:
            previous = None
            if self._recent and not negative:
                last_key, last_ts, _ = self._recent[-1]
                last_row = self.catalog.row_of_key.get(last_key)
                if (
                    last_row is not None
                    and last_key != episode.item_key
                    and episode.ts - last_ts <= self.config.transition_window
                ):
                    previous = int(self.catalog.cells[last_row])
            changed = self.bank.learn(
                cell=cell,
                previous_cell=previous if previous is not None and previous >= 0 else None,
                success=episode.success,
                negative=negative,
                bucket=episode.time_bucket,
                day=episode.day_type,
                now=episode.ts,
            )
            for stat in changed:
                self.knowledge.learn_local(stat)
        self._note_recent(episode)

    def _note_recent(self, episode: EpisodeRow) -> None:
        # Every title started counts as recent (weighted by reward when scoring); skips don't.
        if episode.item_key is None or episode.kind in ("skip", "browse"):
            return
        self._recent.append((episode.item_key, episode.ts, episode.reward))

    # -- consolidation -------------------------------------------------------------------
    def flush(self) -> None:
        """Persist derived state (tiers, patterns, skills, outbox) in one durable commit."""
        with self._lock:
            changes = self.bank.outbox_changes() if self.codebook_id else []
            dirty = self.bank.take_dirty()
            with self.store.transaction(durable=True) as conn:
                self.store.save_patterns(conn, dirty, [])
                if changes:
                    self.store.enqueue(conn, changes)
                self.store.save_tiers(
                    conn,
                    [
                        (n, t.vector.astype(np.float32).tobytes(), t.mass, t.updated_at)
                        for n, t in self.tiers.tiers.items()
                        if n in LOCAL_TIERS
                    ],
                )
                if self.skills.dirty:
                    self.store.save_skills(conn, self.skills.rows(self.skills.dirty))
                    self.skills.dirty.clear()
                self.store.set_meta(conn, "applied_episode", str(self._applied_episode))
            self._since_flush = 0
            self._save_index()

    def end_session(self, *, now: float | None = None) -> None:
        """Session-end consolidation: the instant tier starts afresh. (No forced flush: the
        episodes are already committed, and derived state is rebuilt from them on open.)"""
        with self._lock:
            self.tiers.end_session(self.clock.now() if now is None else now)
            self._session_id = ""

    def consolidate(self, *, weekly: bool = True) -> dict[str, int]:
        """The slow loops: prune stale and surplus patterns (daily) and, weekly, episodes
        older than the retention. Runs by itself as the clock passes; callable any time."""
        with self._lock:
            now = self.clock.now()
            self.flush()
            deleted, shared = self.bank.prune(now, stale_after=30 * DAY)
            cutoff = now - self.config.episode_retention
            with self.store.transaction(durable=True) as conn:
                self.store.save_patterns(conn, [], [stat.id for stat in deleted])
                if shared:
                    self.store.enqueue(conn, [(pid, "remove") for pid in shared])
                pruned = self.store.prune_episodes(conn, cutoff) if weekly else 0
                self.store.set_meta(conn, "consolidated_daily", repr(now))
                if weekly:
                    self.store.set_meta(conn, "consolidated_weekly", repr(now))
            self._consolidated = (now, now if weekly else self._consolidated[1])
            self.knowledge.forget_local(stat.key for stat in deleted)
            return {"patterns_pruned": len(deleted), "episodes_pruned": pruned}

    def _maybe_consolidate(self, now: float) -> None:
        daily, weekly = self._consolidated
        if not daily:
            self._consolidated = (now, now)
        elif now - daily >= DAY:
            self.consolidate(weekly=now - weekly >= 7 * DAY)

    def export_patterns(self, min_quality: float | None = None) -> list[Pattern]:
        """Shareable patterns only: success ≥ min quality and support ≥ min support."""
        with self._lock:
            return self.bank.export(min_quality)

    # -- collective knowledge ------------------------------------------------------------
    def apply_release(
        self,
        *,
        version: int,
        patterns: Sequence[ConsolidatedPattern],
        removed: Sequence[str],
        trends: Sequence[Trend],
        cursor: str = "release_version",
        popular: Sequence[ItemScore] = (),
    ) -> None:
        """Apply a pulled release in one transaction; the cursor moves only as it commits.

        ``popular``: the released title popularity list; non-empty replaces the last one."""
        with self._lock:
            with self.store.transaction(durable=True) as conn:
                self.store.apply_release(conn, patterns, removed, trends)
                save_popular(conn, popular)
                self._popular = None
                self.store.set_cursor(conn, cursor, str(version))
                self.store.set_cursor(conn, "last_sync", repr(self.clock.now()))
            self._refresh_collective(*self.store.load_collective())

    def _refresh_collective(
        self, patterns: Sequence[ConsolidatedPattern], trends: Sequence[Trend]
    ) -> None:
        self.knowledge.rebuild_collective(patterns, trends)
        if self.centroids is None:
            return
        weights = np.zeros(len(self.centroids), dtype=np.float32)
        for p in patterns:
            if p.task == "preference" and p.cells and 0 <= p.cells[0] < len(weights):
                weights[p.cells[0]] += float(p.weight) * float(p.success_rate)
        if weights.sum() > 0:
            vector = (weights / weights.sum()) @ self.centroids
            self.tiers.set_collective(vector, float(weights.sum()), self.clock.now())

    # -- introspection -------------------------------------------------------------------
    def stats(self) -> dict[str, object]:
        with self._lock:
            now = self.clock.now()
            self.flush()
            index_file = self.directory / INDEX_FILE
            shareable = sum(1 for s in self.bank if self.bank.shareable(s))
            last_sync = self.store.get_cursor("last_sync", "")
            return {
                "directory": str(self.directory),
                "schema_version": self.store.schema_version,
                "items": len(self.catalog),
                "episodes": self.store.count("episodes"),
                "patterns": len(self.bank),
                "shareable_patterns": shareable,
                "collective_patterns": self.knowledge.collective_patterns,
                "outbox": self.store.outbox_size(),
                "codebook_id": self.codebook_id,
                "codebook_cells": 0 if self.centroids is None else len(self.centroids),
                "skills": self.skills.summary(),
                "tiers": self.tiers.summary(now),
                "footprint_bytes": self.store.footprint_bytes(exclude_catalog=True),
                "db_bytes": self.store.footprint_bytes(exclude_catalog=False),
                "index_bytes": index_file.stat().st_size if index_file.exists() else 0,
                "release_version": int(self.store.get_cursor("release_version", "0")),
                "last_sync": float(last_sync) if last_sync else None,
            }
