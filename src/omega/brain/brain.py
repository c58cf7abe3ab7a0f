"""One TV's brain: the facade a TV app embeds.

It owns a directory with ``brain.db`` (SQLite) and ``index.usearch`` (the vector index).
Learning happens on every event (tiers, patterns); flushes persist derived state in
batches with a watermark, and reopening replays the episodes tracked after it, so a crash
loses nothing that was tracked.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from omega.brain import episodes as ep
from omega.brain._popular import load_popular, save_popular
from omega.brain.catalog import Catalog, CatalogItem, SharedCatalog, item_text
from omega.brain.codebook import assign_cells, build_codebook, codebook_id
from omega.brain.config import DAY, BrainConfig
from omega.brain.episodes import Context, Episode, context_at
from omega.brain.index import VectorIndex
from omega.brain.knowledge import CellKnowledge
from omega.brain.patterns import PatternBank
from omega.brain.recommend import (
    Filters,
    Recommendation,
    ScoringState,
    allowed,
    candidate_rows,
    cell_state,
    choose,
    combine,
    explain,
    reason_for,
    score_rows,
    signal_rows,
)
from omega.brain.skills import SELF_TESTED, SKILLS, SkillLibrary, SkillStat
from omega.brain.store import BrainStore, EpisodeRow
from omega.brain.tiers import LOCAL_TIERS, MemoryTiers
from omega.clock import Clock, SystemClock
from omega.errors import ConfigError, CorruptStoreError, InputError
from omega.protocol.messages import ConsolidatedPattern, ItemScore, Pattern, Trend

if TYPE_CHECKING:
    from omega.brain.embedder import Embedder

__all__ = ["DIM", "Brain", "Tracked"]

DIM = 384
log = logging.getLogger(__name__)
_INDEX_FILE = "index.usearch"
_DB_FILE = "brain.db"
_FULL_SCORE_LIMIT = 3000  # below this catalog size, score every title
_OFFER_TTL = 6 * 3600.0
_BLAS_LIMITED = False  # a recommendation list earns credit for this long


@dataclass(frozen=True, slots=True)
class Tracked:
    """What tracking an event stored."""

    episode_id: int
    kind: str
    reward: float
    success: bool
    critique: str
    context: Context


class Brain:
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

    def _restore_own_catalog(self) -> None:
        codebook = self.store.load_codebook()
        if codebook is not None:
            self.codebook_id, self.centroids, _ = codebook
            self.knowledge = self._new_knowledge(len(self.centroids))
        rows, matrix = self.store.load_items()
        self.catalog = Catalog(rows, matrix, self.knowledge.k)
        index_path = self.directory / _INDEX_FILE
        if index_path.exists():
            try:
                self.index = VectorIndex.load(index_path, DIM)
            except CorruptStoreError as exc:
                # brain.db holds every vector, so the index is rebuilt exactly, not degraded.
                log.warning("%s; rebuilding it from brain.db", exc)
        if len(self.index) != len(rows):
            self._rebuild_index()

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

    def _rebuild_index(self) -> None:
        self.index = VectorIndex(DIM)
        if len(self.catalog):
            self.index.upsert(self.catalog.keys.astype(np.uint64), self.catalog.matrix)
        self.index_rebuilt = True
        self._catalog_dirty = True

    # -- embedding ---------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from omega.brain.embedder import shared_embedder

            self._embedder = shared_embedder()
        return self._embedder

    # -- catalog -------------------------------------------------------------------------
    def upsert_items(self, items: Sequence[CatalogItem]) -> int:
        """Add or replace titles; those without an embedding are embedded locally."""
        self._own_catalog()
        if not items:
            return 0
        ids = [item.item_id for item in items]
        if any(not isinstance(i, str) or not i.strip() for i in ids):
            raise InputError("every catalog item needs a non-empty item_id")
        if len(set(ids)) != len(ids):
            raise InputError("duplicate item_id in one catalog batch")
        vectors = np.zeros((len(items), DIM), dtype=np.float32)
        missing = [i for i, item in enumerate(items) if item.embedding is None]
        for i, item in enumerate(items):
            if item.embedding is not None:
                vec = np.asarray(item.embedding, dtype=np.float32).reshape(-1)
                if vec.shape != (DIM,) or not np.all(np.isfinite(vec)):
                    raise InputError(
                        f"item {item.item_id!r}: embedding must be {DIM} finite floats"
                    )
                norm = float(np.linalg.norm(vec))
                if norm <= 0:
                    raise InputError(f"item {item.item_id!r}: embedding is all zeros")
                vectors[i] = vec / norm
        if missing:
            vectors[missing] = self.embedder.embed([item_text(items[i]) for i in missing])
        with self._lock:
            cells = (
                assign_cells(vectors, self.centroids)
                if self.centroids is not None
                else np.full(len(items), -1, dtype=np.int32)
            )
            f16 = vectors.astype(np.float16)
            with self.store.transaction() as conn:
                keys = self.store.upsert_items(
                    conn,
                    [
                        (
                            item.item_id,
                            item.title,
                            "|".join(item.genres),
                            item.year,
                            item.runtime_min,
                            "|".join(item.tags),
                            item.description,
                            f16[i].tobytes(),
                            int(cells[i]),
                        )
                        for i, item in enumerate(items)
                    ],
                )
            self.index.upsert(np.array(keys, dtype=np.uint64), f16.astype(np.float32))
            self._reload_catalog()
            if self.centroids is None and len(self.catalog) >= 2:
                self._build_local_codebook()
            self._catalog_dirty = True
            self._save_index()
        return len(items)

    def remove_items(self, item_ids: Iterable[str]) -> int:
        self._own_catalog()
        with self._lock:
            with self.store.transaction() as conn:
                keys = self.store.remove_items(conn, item_ids)
            self.index.remove(np.array(keys, dtype=np.uint64))
            self._reload_catalog()
            self._catalog_dirty = True
            self._save_index()
        return len(keys)

    def _own_catalog(self) -> None:
        if self.shared is not None:
            raise ConfigError("this brain reads a shared catalog; change the shared copy instead")

    def _reload_catalog(self) -> None:
        rows, matrix = self.store.load_items()
        self.catalog = Catalog(rows, matrix, self.knowledge.k)
        self._seen = None

    def _build_local_codebook(self) -> None:
        k = min(self.config.codebook_cells, len(self.catalog))
        self.set_codebook(build_codebook(self.catalog.matrix, k, seed=0), origin="local")

    def set_codebook(
        self, centroids: npt.NDArray[np.float32], *, origin: str = "constellation"
    ) -> str:
        """Adopt content cells (the constellation's, normally). Patterns are relearned in the
        new cells from the stored episodes."""
        self._own_catalog()
        centroids = np.asarray(centroids, dtype=np.float32)
        if centroids.ndim != 2 or centroids.shape[1] != DIM or not np.all(np.isfinite(centroids)):
            raise InputError(f"a codebook must be a finite (k, {DIM}) matrix")
        with self._lock:
            new_id = codebook_id(centroids)
            if new_id == self.codebook_id:
                return new_id
            cells = (
                assign_cells(self.catalog.matrix, centroids).tolist() if len(self.catalog) else []
            )
            with self.store.transaction(durable=True) as conn:
                self.store.save_codebook(conn, new_id, centroids, origin)
                self.store.set_cells(conn, self.catalog.keys.tolist(), cells)
                self.store.clear_patterns(conn)
                conn.execute("DELETE FROM outbox")
                conn.execute("DELETE FROM inflight")
                self.store.set_meta(conn, "applied_episode", "0")
            self.centroids, self.codebook_id = centroids, new_id
            self.knowledge = self._new_knowledge(len(centroids))
            self._reload_catalog()
            self.bank = PatternBank(
                min_quality=self.config.min_quality,
                min_support=self.config.min_support,
                max_patterns=self.config.max_patterns,
            )
            self._recent.clear()
            for episode in self.store.episodes_after(0):
                self._learn(episode)
                self._applied_episode = episode.id
            self._refresh_collective(*self.store.load_collective())
            self.flush()
        return new_id

    def _save_index(self) -> None:
        if self._catalog_dirty and self.shared is None:
            self.index.save(self.directory / _INDEX_FILE)
            self._catalog_dirty = False

    def item_key(self, item_id: str) -> int:
        key = self.catalog.key_of_id.get(item_id)
        if key is None:
            raise InputError(f"unknown item {item_id!r}: add it to the catalog first")
        return key

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

    def _self_test(self, episode: EpisodeRow) -> None:
        """Before learning from a title the household started and enjoyed, rank it under
        each skill among a sample of unseen titles, as a moment earlier (see ``skills``)."""
        sample = self.config.self_test_sample
        if (
            sample <= 0
            or episode.kind not in ("view", "rating")
            or not episode.success
            or episode.item_key is None
        ):
            return
        target = self.catalog.row_of_key.get(episode.item_key)
        if target is None or episode.item_key in self._interacted:
            return  # not in the catalog, or a rewatch (a recommender would not offer it)
        seen = self._seen_mask()
        if len(self.catalog) <= sample:  # rank among every unseen title
            drawn = np.flatnonzero(~seen)
            drawn = drawn[drawn != target]
        else:
            rng = np.random.default_rng(episode.id)  # deterministic per brain
            drawn = rng.integers(0, len(self.catalog), size=sample + sample // 2)
            drawn = np.unique(drawn[~seen[drawn] & (drawn != target)])[:sample]
        if len(drawn) == 0:
            return
        rows = np.concatenate(([target], drawn)).astype(np.int64)
        signals, penalty = signal_rows(self.catalog, rows, self._state(episode.ts, None))
        gains = {}
        for name in SELF_TESTED:
            scores = combine(signals, penalty, SKILLS[name])
            rank = int(np.count_nonzero(scores[1:] >= scores[0]))  # ties count against it
            gains[name] = 1.0 / (1.0 + rank)
        self.skills.self_test(gains, episode.ts)

    def _credit_skill(self, episode: EpisodeRow) -> None:
        if self._offer is None or episode.kind not in ("view", "rating", "search"):
            return
        shown_at, skill, context, keys = self._offer
        if episode.ts - shown_at > _OFFER_TTL:
            self._offer = None
            return
        if episode.item_key is not None:
            hit = episode.item_key in keys and episode.success
            self.skills.record(skill, context, hit, episode.ts)
            self._offer = None

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

    # -- recommending --------------------------------------------------------------------
    def _state(self, now: float, context: Context | None) -> ScoringState:
        ctx = context or context_at(now)
        recent: list[tuple[int, float]] = []
        for key, _, reward in reversed(self._recent):
            row = self.catalog.row_of_key.get(key)
            if row is not None and all(r != row for r, _ in recent):
                # Recency by position; a title enjoyed counts more than one abandoned.
                recent.append((row, (0.5 + 0.5 * reward) * 0.8 ** len(recent)))
            if len(recent) == 10:
                break
        state = ScoringState(
            tiers={n: self.tiers[n].direction(now) for n in self.tiers.tiers},
            recent_rows=recent,
            time_bucket=ctx.time_bucket,
            day_type=ctx.day_type,
            knowledge=self.knowledge,
            popular=self._popular_scores(),
        )
        cell_state(self.catalog, state)
        return state

    def _popular_scores(self) -> npt.NDArray[np.float32]:
        """The collective tier's popularity per catalog row (cached until it changes)."""
        if self._popular is None or len(self._popular) != len(self.catalog):
            with self.store.lock:
                self._popular = load_popular(self.store.conn, self.catalog)
        return self._popular

    def _seen_mask(self) -> npt.NDArray[np.bool_]:
        """Catalog rows already watched or skipped, as a mask (cached per catalog)."""
        if self._seen is None or len(self._seen) != len(self.catalog):
            self._seen = np.zeros(len(self.catalog), dtype=bool)
            if self._interacted:
                self._seen[self.catalog.rows_for_keys(sorted(self._interacted))] = True
        return self._seen

    def recommend(
        self,
        k: int = 10,
        *,
        context: Context | None = None,
        filters: Filters | None = None,
    ) -> list[Recommendation]:
        """Up to k titles not yet watched or skipped, best first, each with a reason."""
        if k < 1 or k > 1000:
            raise InputError(f"k must be within [1, 1000], got {k}")
        with self._lock:
            now = self.clock.now()
            filters = filters or Filters()
            state = self._state(now, context)
            ctx_key = f"{state.time_bucket}/{state.day_type}"
            skill = self.skills.choose(ctx_key)
            if len(self.catalog) <= _FULL_SCORE_LIMIT:
                rows = np.arange(len(self.catalog), dtype=np.int64)
            else:
                rows = candidate_rows(
                    self.catalog, state, self.index, per_source=self.config.candidates
                )
            seen = self._seen_mask()
            rows = allowed(self.catalog, rows, filters, seen)
            if len(rows) < k and len(self.catalog) > _FULL_SCORE_LIMIT:
                every = np.arange(len(self.catalog), dtype=np.int64)
                rows = allowed(self.catalog, every, filters, seen)
            if len(rows) == 0:
                return []
            scores, signals = score_rows(self.catalog, rows, state, skill)
            picked = choose(scores, rows, self.catalog, k, self.config.diversity)
            out = []
            picked_rows = [int(rows[i]) for i in picked]
            explained = explain(self.catalog, picked_rows, state.recent_rows)
            for i, row, (recent_title, genre) in zip(picked, picked_rows, explained, strict=True):
                item_signals = {n: float(v[i]) for n, v in signals.items()}
                out.append(
                    Recommendation(
                        item_id=self.catalog.ids[row],
                        title=self.catalog.rows[row].title,
                        score=float(scores[i]),
                        reason=reason_for(
                            item_signals,
                            skill,
                            recent_title=recent_title,
                            time_bucket=state.time_bucket,
                            genre=genre,
                        ),
                        signals=item_signals,
                    )
                )
            self._offer = (
                now,
                skill.name,
                ctx_key,
                frozenset(int(self.catalog.keys[rows[i]]) for i in picked),
            )
            return out

    def score_all(self, *, context: Context | None = None) -> npt.NDArray[np.float32]:
        """A score for every catalog row (−inf for titles already interacted with): the
        full ranking the evaluation protocol asks for."""
        with self._lock:
            now = self.clock.now()
            state = self._state(now, context)
            skill = self.skills.choose(f"{state.time_bucket}/{state.day_type}")
            rows = np.arange(len(self.catalog), dtype=np.int64)
            scores, _ = score_rows(self.catalog, rows, state, skill)
            scores[self._seen_mask()] = -np.inf
            return scores

    # -- introspection -------------------------------------------------------------------
    def stats(self) -> dict[str, object]:
        with self._lock:
            now = self.clock.now()
            self.flush()
            index_file = self.directory / _INDEX_FILE
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
