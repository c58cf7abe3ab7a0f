"""How a brain recommends: the scoring state, full rankings, and the skills' self-tests.

A mixin of :class:`omega.brain.Brain` (kept apart by concept: what the brain does with
what it knows, not how it learns). The scoring itself is :mod:`omega.brain.recommend`.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np
import numpy.typing as npt

from omega.brain._popular import load_popular
from omega.brain.catalog import Catalog
from omega.brain.config import BrainConfig
from omega.brain.episodes import Context, context_at
from omega.brain.index import VectorIndex
from omega.brain.knowledge import CellKnowledge
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
from omega.brain.skills import SELF_TESTED, SKILLS, SkillLibrary
from omega.brain.store import BrainStore, EpisodeRow
from omega.brain.tiers import MemoryTiers
from omega.clock import Clock
from omega.errors import InputError

__all__ = ["FULL_SCORE_LIMIT", "OFFER_TTL", "Recommending"]

FULL_SCORE_LIMIT = 3000  # below this catalog size, score every title
OFFER_TTL = 6 * 3600.0  # a recommendation list earns credit for this long


class Recommending:
    """Recommendation and self-test methods; the state lives on the brain."""

    store: BrainStore
    config: BrainConfig
    clock: Clock
    _lock: threading.RLock
    index: VectorIndex
    catalog: Catalog
    knowledge: CellKnowledge
    tiers: MemoryTiers
    skills: SkillLibrary
    _recent: deque[tuple[int, float, float]]
    _interacted: set[int]
    _seen: npt.NDArray[np.bool_] | None
    _popular: npt.NDArray[np.float32] | None
    _offer: tuple[float, str, str, frozenset[int]] | None

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
        state = self._state(episode.ts, None)
        signals, penalty = signal_rows(self.catalog, rows, state)
        gains = {}
        for name in SELF_TESTED:
            scores = combine(signals, penalty, SKILLS[name], gate=self._gate(state))
            rank = int(np.count_nonzero(scores[1:] >= scores[0]))  # ties count against it
            gains[name] = 1.0 / (1.0 + rank)
        self.skills.self_test(gains, episode.ts)

    def _credit_skill(self, episode: EpisodeRow) -> None:
        if self._offer is None or episode.kind not in ("view", "rating", "search"):
            return
        shown_at, skill, context, keys = self._offer
        if episode.ts - shown_at > OFFER_TTL:
            self._offer = None
            return
        if episode.item_key is not None:
            hit = episode.item_key in keys and episode.success
            self.skills.record(skill, context, hit, episode.ts)
            self._offer = None

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

    def _gate(self, state: ScoringState) -> float:
        """The popularity gate as a share of the titles ranked (``BrainConfig.popular_pool``
        of the catalog); none before any viewing."""
        pool = self.config.popular_pool
        if not pool or not state.recent_rows or not len(self.catalog):
            return 0.0
        return min(1.0, pool / len(self.catalog))

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
            whole = len(self.catalog) <= FULL_SCORE_LIMIT
            if whole:
                rows = np.arange(len(self.catalog), dtype=np.int64)
            else:
                rows = candidate_rows(
                    self.catalog, state, self.index, per_source=self.config.candidates
                )
            seen = self._seen_mask()
            rows = allowed(self.catalog, rows, filters, seen)
            if len(rows) < k and not whole:
                every = np.arange(len(self.catalog), dtype=np.int64)
                rows = allowed(self.catalog, every, filters, seen)
                whole = True
            if len(rows) == 0:
                return []
            # Candidates already come from the household's taste; a whole-catalog scoring
            # (the rows left after the filters) is gated.
            gate = self._gate(state) if whole else 0.0
            scores, signals = score_rows(self.catalog, rows, state, skill, gate=gate)
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
            seen = self._seen_mask()
            scores, _ = score_rows(
                self.catalog, rows, state, skill, gate=self._gate(state), ranked=~seen
            )
            scores[seen] = -np.inf
            return scores
