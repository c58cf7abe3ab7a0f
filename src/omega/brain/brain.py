"""One TV's brain: the facade a TV app embeds.

It owns a directory with ``brain.db`` (SQLite) and ``index.usearch`` (the vector index),
and delegates to a few parts with one job each:

- ``titles`` (:class:`~omega.brain.catalog_state.CatalogState`): catalog, index, codebook;
- ``learner`` (:class:`~omega.brain.learner.Learner`): tiers, patterns, cell knowledge,
  skills, recent titles;
- ``sync`` (:class:`~omega.brain.sync_state.SyncState`): the one seam the device's sync
  uses — cursors, outbox, the push in flight, releases;
- recommending is :mod:`omega.brain.ranking`, functions over a snapshot the brain takes.

An event flows: ``track_*`` → an episode committed (``store.episodes``) → the learner
(tiers, patterns → outbox at the next flush) → ``recommend`` reads a snapshot of what
was learned. Flushes persist derived state in batches with a watermark, and reopening
replays the episodes tracked after it, so a crash loses nothing that was tracked.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from omega.brain import episodes as ep
from omega.brain import ranking
from omega.brain._kept_signals import KeptSignals
from omega.brain._opening import DB_FILE, brain_directory, one_blas_thread
from omega.brain.catalog import Catalog, CatalogItem, SharedCatalog
from omega.brain.catalog_state import DIM, INDEX_FILE, CatalogState, checked_centroids
from omega.brain.codebook import codebook_id as centroids_id
from omega.brain.config import DAY, BrainConfig
from omega.brain.cowatch import CowatchState
from omega.brain.episodes import Context, Episode, EpisodeRow, Tracked, context_at
from omega.brain.learner import Learner
from omega.brain.loops import META_KEYS, LoopTimes, loop_report
from omega.brain.recommend import ALL_SIGNALS, Filters, Recommendation
from omega.brain.store import BrainStore
from omega.brain.sync_state import LAST_SYNC_CURSOR, SyncState
from omega.clock import Clock, SystemClock
from omega.errors import InputError
from omega.protocol.messages import Pattern

if TYPE_CHECKING:
    from omega.brain.embedder import Embedder

__all__ = ["DIM", "Brain", "Tracked"]

log = logging.getLogger(__name__)
_APPLIED = "applied_episode"  # meta: the last episode the flushed state has learned
_DAILY, _WEEKLY = META_KEYS["deliberative"], META_KEYS["evolutionary"]
_TRANSFORMED = META_KEYS["transformative"]


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
        self.store = store
        self.config = config
        self.clock = clock
        self._lock = threading.RLock()
        self.titles = CatalogState(directory, store.items, embedder=embedder, shared=shared)
        self.learner = Learner(config, config.codebook_cells)
        self.sync = SyncState(
            store, learner=self.learner, titles=self.titles, clock=clock, lock=self._lock
        )
        self.cowatch = CowatchState(store, config, self.sync)
        self._session_id = ""
        self._last_event_ts = 0.0
        self._applied_episode = 0  # the last episode learned from
        self._since_flush = 0
        self._offer: ranking.Offer | None = None
        self._kept_signals = KeptSignals()  # a redrawn screen's candidates, scored once
        self._loop_times = LoopTimes()  # when the clock-driven loops last ran
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------
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
        one_blas_thread()
        path = brain_directory(directory, create=create)
        config, clock = config or BrainConfig(), clock or SystemClock()
        store = BrainStore(path / DB_FILE, fsync=config.fsync)
        shared = shared_catalog
        brain = cls(path, store, config=config, clock=clock, embedder=embedder, shared=shared)
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
        self.titles.restore()
        if self.titles.codebook is not None:
            self.learner.relearn(self.titles.k)
        self.learner.restore(self.store.learned)
        self.sync.refresh()
        store = self.store
        self._applied_episode = int(store.get_meta(_APPLIED, "0") or 0)
        self._loop_times = LoopTimes.restore(store.get_meta)
        self.learner.interacted = store.episodes.interacted_keys()
        recent = store.episodes.recent(40)
        if recent:
            self._last_event_ts, self._session_id = recent[0].ts, recent[0].session_id
        for episode in reversed(recent):
            if episode.id <= self._applied_episode:
                self.learner.note_recent(episode)
        # Replay what was tracked after the last flush: a crash loses no learning.
        self._replay(self._applied_episode)

    def _replay(self, after: int) -> None:
        catalog = self.titles.catalog
        for episode in self.store.episodes.after(after):
            self.learner.learn(episode, catalog)
            self._applied_episode = episode.id

    # -- what the brain holds ------------------------------------------------------------
    @property
    def catalog(self) -> Catalog:
        """The current catalog snapshot (titles, vectors, cells)."""
        return self.titles.catalog

    @property
    def codebook_id(self) -> str:
        """The codebook the brain's patterns speak in ("" before there is one)."""
        return self.titles.codebook_id

    # -- tracking ------------------------------------------------------------------------
    def track_view(
        self,
        item_id: str,
        *,
        watch_fraction: float | None = None,
        duration_s: float | None = None,
        completed: bool = False,
    ) -> Tracked:
        key = self.titles.key(item_id)
        episode = ep.view_episode(
            item_id,
            watch_fraction=watch_fraction,
            duration_s=duration_s,
            runtime_s=self.titles.runtime_s(key),
            completed=completed,
        )
        return self._track(episode, key)

    def track_skip(self, item_id: str, *, at_seconds: float = 0.0) -> Tracked:
        key = self.titles.key(item_id)
        return self._track(ep.skip_episode(item_id, at_seconds=at_seconds), key)

    def track_rating(self, item_id: str, stars: float) -> Tracked:
        key = self.titles.key(item_id)
        return self._track(ep.rating_episode(item_id, stars=stars), key)

    def track_search(
        self, query: str, results: Sequence[str], selected: str | None = None
    ) -> Tracked:
        for item_id in results:
            self.titles.key(item_id)
        episode = ep.search_episode(query, results=list(results), selected=selected)
        return self._track(episode, self.titles.key(selected) if selected else None)

    def track_browse(self, items: Sequence[str]) -> Tracked:
        for item_id in items:
            self.titles.key(item_id)
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
            row = self.store.episodes.insert(episode, ts=now, item_key=key, context=context)
            self._credit_offer(row)
            self._self_test(row)
            self.learner.learn(row, self.titles.catalog)
            self._applied_episode = row.id
            self._since_flush += 1
            if self._since_flush >= self.config.flush_every:
                self.flush()
            self._maybe_consolidate(now)
            return Tracked(row.id, row.kind, row.reward, row.success, row.critique, context)

    def _credit_offer(self, episode: EpisodeRow) -> None:
        offer = self._offer
        hit, self._offer = ranking.credit(offer, episode)
        if hit is not None and offer is not None:
            self.learner.skills.record(offer.skill, offer.context, hit, episode.ts)

    def _self_test(self, episode: EpisodeRow) -> None:
        """Before learning from a title the household started and enjoyed, rank it under
        each skill as a moment earlier (see ``omega.brain.skills``)."""
        sample = self.config.self_test_sample
        if not ranking.is_self_test(episode, self.learner.interacted, sample=sample):
            return
        snap = self._snapshot(episode.ts, None, signals=ranking.SELF_TEST_SIGNALS)
        gains = ranking.self_test(snap, episode, sample=sample)
        if gains:
            self.learner.skills.self_test(gains, episode.ts)

    # -- recommending --------------------------------------------------------------------
    def _snapshot(
        self, now: float, context: Context | None, *, signals: frozenset[str] = ALL_SIGNALS
    ) -> ranking.Snapshot:
        catalog, learner = self.titles.catalog, self.learner
        state = ranking.scoring_state(
            catalog,
            tiers=learner.tiers,
            recent=learner.recent,
            knowledge=learner.knowledge,
            popular=learner.popular(catalog, self.store.releases),
            now=now,
            context=context,
            cowatch=self.cowatch.matrix(catalog),
            cowatch_pool=self.config.cowatch_pool,
            signals=signals,
        )
        return ranking.Snapshot(
            catalog=catalog,
            index=self.titles.index,
            state=state,
            seen=learner.seen(catalog),
            gate=ranking.popularity_gate(self.config, state, catalog),
            kept=self._kept_signals,
        )

    def recommend(
        self,
        k: int = 10,
        *,
        context: Context | None = None,
        filters: Filters | None = None,
    ) -> list[Recommendation]:
        """Up to k titles not yet watched or skipped, best first, each with a reason."""
        if k < 1 or k > 1000:
            raise InputError(f"k must be within [1, 1000], got {k}", param="k")
        with self._lock:
            now = self.clock.now()
            snap = self._snapshot(now, context)
            skill = self.learner.skills.choose(f"{snap.state.time_bucket}/{snap.state.day_type}")
            out, offer = ranking.recommend(
                snap, skill, k=k, filters=filters or Filters(), config=self.config, now=now
            )
            if offer is not None:
                self._offer = offer
            return out

    def score_all(self, *, context: Context | None = None) -> npt.NDArray[np.float32]:
        """A score for every catalog row (−inf for titles already interacted with): the
        full ranking the evaluation protocol asks for."""
        with self._lock:
            snap = self._snapshot(self.clock.now(), context)
            skill = self.learner.skills.choose(f"{snap.state.time_bucket}/{snap.state.day_type}")
            return ranking.rank(snap, skill)

    # -- co-watch knowledge (omega.brain.cowatch) ----------------------------------------
    def pairs_to_contribute(self, epoch: int, limit: int | None = None) -> list[tuple[int, int]]:
        """This TV's ordered co-watch pairs (a, b) for ``epoch``, as positions in the
        server's catalog order: at most ``cowatch_pairs_per_epoch`` (and ``limit``: what
        the sync can send now; the rest stay for later epochs), none contributed before,
        closest first; the same pairs again when asked twice for one epoch."""
        with self._lock:
            return self.cowatch.pairs_to_contribute(epoch, self.titles.catalog, limit)

    def apply_cowatch(
        self, version: int, rows: Sequence[tuple[int, Sequence[tuple[int, int]]]]
    ) -> None:
        """Store a page of the released co-watch table: for each source title's position,
        its neighbours' (position, quantised count), replacing that source's list (an
        empty list removes it); sources not in the page stay."""
        with self._lock:
            self.cowatch.apply(version, rows)

    # -- catalog and codebook ------------------------------------------------------------
    def upsert_items(self, items: Sequence[CatalogItem]) -> int:
        """Add or replace titles; those without an embedding are embedded locally."""
        vectors = self.titles.embed(items)  # outside the lock: embedding is the slow part
        if not items:
            return 0
        with self._lock:
            with self.store.transaction(durable=True) as conn:
                change = self.titles.upsert(conn, items, vectors)
            self.titles.apply(change)
            centroids = self.titles.local_codebook(self.config.codebook_cells)
            if centroids is not None:
                self.set_codebook(centroids, origin="local")
        return len(items)

    def remove_items(self, item_ids: Iterable[str]) -> int:
        with self._lock:
            with self.store.transaction(durable=True) as conn:
                change = self.titles.remove(conn, item_ids)
            self.titles.apply(change)
        return len(change.keys)

    def set_codebook(
        self, centroids: npt.NDArray[np.float32], *, origin: str = "constellation"
    ) -> str:
        """Adopt content cells (the constellation's, normally). Patterns are relearned in the
        new cells from the stored episodes."""
        self.titles.require_own()
        centroids = checked_centroids(centroids)
        with self._lock:
            if centroids_id(centroids) == self.titles.codebook_id:
                return self.titles.codebook_id
            with self.store.transaction(durable=True) as conn:
                codebook = self.titles.write_codebook(conn, centroids, origin)
                # Patterns named in the old cells mean nothing in the new ones.
                self.store.learned.clear_patterns(conn)
                self.store.outbox.clear(conn)
                self.store.set_meta(conn, _APPLIED, "0")
                self.store.set_meta(conn, _TRANSFORMED, repr(self.clock.now()))
            self.titles.adopt(codebook)
            self.learner.relearn(codebook.k)
            self._replay(0)
            self.sync.refresh()
            self.flush()
        return codebook.codebook_id

    # -- consolidation -------------------------------------------------------------------
    def flush(self) -> None:
        """Persist derived state (tiers, patterns, skills, outbox) in one durable commit."""
        with self._lock:
            bank = self.learner.bank
            changes = bank.outbox_changes() if self.titles.codebook_id else []
            with self.store.transaction(durable=True) as conn:
                self.learner.flush(conn, self.store.learned)
                if changes:
                    self.store.outbox.enqueue(conn, changes)
                self.store.set_meta(conn, _APPLIED, str(self._applied_episode))
            self._since_flush = 0
            self.titles.save_index()

    def end_session(self, *, now: float | None = None) -> None:
        """Session-end consolidation: the instant tier starts afresh. (No forced flush: the
        episodes are already committed, and derived state is rebuilt from them on open.)"""
        with self._lock:
            self.learner.tiers.end_session(self.clock.now() if now is None else now)
            self._session_id = ""

    def consolidate(self, *, weekly: bool = True) -> dict[str, int]:
        """The slow loops: prune stale and surplus patterns (daily) and, weekly, episodes
        older than the retention. Runs by itself as the clock passes; callable any time."""
        with self._lock:
            now = self.clock.now()
            self.flush()
            deleted, shared = self.learner.prune(now, stale_after=30 * DAY)
            cutoff = now - self.config.episode_retention
            with self.store.transaction(durable=True) as conn:
                self.store.learned.save_patterns(conn, [], [stat.id for stat in deleted])
                if shared:
                    self.store.outbox.enqueue(conn, [(pid, "remove") for pid in shared])
                pruned = self.store.episodes.prune(conn, cutoff) if weekly else 0
                self.store.set_meta(conn, _DAILY, repr(now))
                if weekly:
                    self.store.set_meta(conn, _WEEKLY, repr(now))
            self._loop_times.daily = now
            if weekly:
                self._loop_times.weekly = now
            return {"patterns_pruned": len(deleted), "episodes_pruned": pruned}

    def _maybe_consolidate(self, now: float) -> list[str]:
        """The daily and weekly loops, when due; the names of those that ran."""
        times = self._loop_times
        if not times.started:
            with self.store.transaction(durable=True) as conn:
                self.store.set_meta(conn, META_KEYS["since"], repr(now))
            times.since = now
            return []
        due = times.due(now)
        if due:
            self.consolidate(weekly="evolutionary" in due)
        return due

    def tick(self) -> list[str]:
        """Run the clock-driven loops that are due (``omega.brain.loops``): the reactive one
        (a session idle past ``session_gap`` ends) every call, the daily and weekly
        consolidation when their time has come. A runtime calls this every few seconds
        (``loops.TICK_S``); returns the names of the loops that ran."""
        with self._lock:
            now = self.clock.now()
            idle = now - self._last_event_ts > self.config.session_gap
            if self._session_id and self._last_event_ts and idle:
                self.end_session(now=now)
            self._loop_times.reacted = now
            return ["reactive", *self._maybe_consolidate(now)]

    def loops(self) -> dict[str, dict[str, object]]:
        """The seven loops (``omega.brain.loops``) and when each last ran. Persisted in
        ``brain.db`` (and so across restarts): all but the reactive loop's, which runs
        every few seconds and is kept in memory."""
        with self._lock:
            times = self._loop_times
            last_sync = self.sync.cursor(LAST_SYNC_CURSOR)
            adopted = self.store.get_meta(_TRANSFORMED)
            return loop_report(
                {
                    "reflexive": self._last_event_ts or None,
                    "reactive": times.reacted or None,
                    "adaptive": float(last_sync) if last_sync else None,
                    "deliberative": times.daily or None,
                    "evolutionary": times.weekly or None,
                    "transformative": float(adopted) if adopted else None,
                }
            )

    def export_patterns(self, min_quality: float | None = None) -> list[Pattern]:
        """Shareable patterns only: success ≥ min quality and support ≥ min support."""
        with self._lock:
            return self.learner.bank.export(min_quality)

    # -- introspection -------------------------------------------------------------------
    def stats(self) -> dict[str, object]:
        with self._lock:
            now = self.clock.now()
            self.flush()
            index_file = self.directory / INDEX_FILE
            bank, store = self.learner.bank, self.store
            last_sync = self.sync.cursor(LAST_SYNC_CURSOR)
            return {
                "directory": str(self.directory),
                "schema_version": store.schema_version,
                "items": len(self.titles.catalog),
                "episodes": store.count("episodes"),
                "patterns": len(bank),
                "shareable_patterns": sum(1 for s in bank if bank.shareable(s)),
                "collective_patterns": self.learner.knowledge.collective_patterns,
                "outbox": self.sync.outbox_size(),
                "codebook_id": self.titles.codebook_id,
                "codebook_cells": self.titles.k,
                "skills": self.learner.skills.summary(),
                "tiers": self.learner.tiers.summary(now),
                "footprint_bytes": store.footprint_bytes(exclude_catalog=True),
                "db_bytes": store.footprint_bytes(exclude_catalog=False),
                "index_bytes": index_file.stat().st_size if index_file.exists() else 0,
                "release_version": self.sync.release_version(),
                "last_sync": float(last_sync) if last_sync else None,
                "loops": self.loops(),
            }
