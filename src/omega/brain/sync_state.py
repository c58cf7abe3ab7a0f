"""The brain's one seam for the device's sync: ``brain.sync``.

Everything ``omega.sync`` (and any other transport a TV uses: gRPC, QUIC, the C SDK)
needs from a brain goes through :class:`SyncState`: the sync cursors, the outbox of
pattern changes and the push in flight, applying (or forgetting) a pulled release, and
the titles started since a popularity report. It never hands out the database.

Durable order: a push is recorded (:meth:`SyncState.begin_batch`) before it is sent and
leaves the outbox only on its ack (:meth:`SyncState.ack_batch`); a release and its cursor
commit in one transaction (:meth:`SyncState.apply_release`), so the cursor is never ahead
of the data.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from omega.brain._store_sync import InflightBatch
from omega.brain.catalog_state import CatalogState
from omega.brain.learner import Learner
from omega.brain.store import BrainStore
from omega.clock import Clock
from omega.protocol.messages import ConsolidatedPattern, ItemScore, Pattern, Trend

__all__ = [
    "CATALOG_ORDER_CURSOR",
    "RELEASE_CURSOR",
    "InflightBatch",
    "OutboxEntry",
    "StartedTitles",
    "SyncState",
]

RELEASE_CURSOR = "release_version"
LAST_SYNC_CURSOR = "last_sync"
#: The server's catalog order (the codebook document's item ids, as a JSON list): two-server
#: reports and co-watch pairs name titles by their position in it.
CATALOG_ORDER_CURSOR = "sync.catalog_order"
_STARTED = ("view", "rating")


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A queued change: the pattern's current shareable state, or None to remove it (it
    was withdrawn, or pruned since it was queued). ``seq`` is the queue position it was
    read at: a change queued again since then is not the one a batch carries."""

    pattern_id: str
    pattern: Pattern | None
    seq: int


@dataclass(frozen=True, slots=True)
class StartedTitles:
    """The titles started (viewed or rated) after an episode, up to ``last_episode``."""

    last_episode: int
    item_ids: list[str]  # sorted, each once


class SyncState:
    """Cursors, outbox, in-flight batch and releases of one brain."""

    def __init__(
        self,
        store: BrainStore,
        *,
        learner: Learner,
        titles: CatalogState,
        clock: Clock,
        lock: threading.RLock,
    ) -> None:
        self._store = store
        self._learner = learner
        self._titles = titles
        self._clock = clock
        self._lock = lock
        self._order: tuple[str, ...] | None = None
        #: Bumped whenever the stored catalog order changes (caches keyed on it rebuild).
        self.order_generation = 0

    # -- cursors -----------------------------------------------------------------------
    def cursor(self, name: str, default: str = "") -> str:
        return self._store.get_cursor(name, default)

    def set_cursors(self, values: Mapping[str, str]) -> None:
        """Store several cursors in one durable transaction (none is ever half written).

        A new catalog order drops the co-watch table in the same commit: its positions
        named titles in the old order."""
        order = values.get(CATALOG_ORDER_CURSOR)
        with self._lock:
            with self._store.transaction(durable=True) as conn:
                changed = order is not None and order != self.cursor(CATALOG_ORDER_CURSOR)
                for name, value in values.items():
                    self._store.set_cursor(conn, name, value)
                if changed:
                    self._store.cowatch.forget(conn)
            if changed:
                self._order = None
                self.order_generation += 1

    def catalog_order(self) -> tuple[str, ...]:
        """The server's catalog order (empty before the sync stored one, or when the stored
        value is not a JSON list)."""
        with self._lock:
            if self._order is None:
                stored = self.cursor(CATALOG_ORDER_CURSOR)
                try:
                    ids = json.loads(stored) if stored else []
                except json.JSONDecodeError:
                    ids = []
                self._order = tuple(str(i) for i in ids) if isinstance(ids, list) else ()
            return self._order

    def release_version(self) -> int:
        """The version of the last release applied (0: none)."""
        return int(self._store.get_cursor(RELEASE_CURSOR, "0"))

    # -- outbox ------------------------------------------------------------------------
    def outbox_size(self) -> int:
        return self._store.outbox.size()

    def pending(self, limit: int) -> list[OutboxEntry]:
        """The oldest changes not yet in a batch, with each pattern's current state."""
        with self._lock:
            entries = self._store.outbox.pending(limit)
            bank = self._learner.bank
            out = []
            for queued in entries:
                stat = bank.get(queued.pattern_id) if queued.op == "upsert" else None
                message = None if stat is None else stat.to_message()
                out.append(OutboxEntry(queued.pattern_id, message, queued.seq))
            return out

    def begin_batch(
        self,
        batch: InflightBatch,
        entries: Sequence[OutboxEntry],
        cursors: Mapping[str, str] | None = None,
    ) -> None:
        """Record a push before sending it; ``cursors`` move in the same durable commit.

        Only the ``entries`` the batch carries join it: a pattern queued again since it
        was read stays in the outbox for the next push (its newer state is not in this
        batch, so this batch's ack must not drop it)."""
        sent = [(e.pattern_id, e.seq) for e in entries]
        self._store.outbox.begin_batch(batch, sent, self._clock.now(), cursors or {})

    def inflight(self) -> InflightBatch | None:
        """The batch sent but not acknowledged, to resend as recorded."""
        return self._store.outbox.inflight()

    def abandon_batch(self, batch_id: str) -> None:
        """Forget a recorded batch that can no longer be sent: its changes return to the
        outbox (the next batch carries their current state)."""
        self._store.outbox.abandon_batch(batch_id)

    def ack_batch(self, batch_id: str) -> int:
        """The server acknowledged the batch: its changes leave the outbox."""
        return self._store.outbox.ack_batch(batch_id)

    # -- releases ----------------------------------------------------------------------
    def apply_release(
        self,
        *,
        version: int,
        patterns: Sequence[ConsolidatedPattern],
        removed: Sequence[str],
        trends: Sequence[Trend],
        popular: Sequence[ItemScore] = (),
        cursor: str = RELEASE_CURSOR,
    ) -> None:
        """Apply a pulled release in one transaction; the cursor moves only as it commits.

        ``popular``: the released title popularity list; non-empty replaces the last one."""
        with self._lock:
            with self._store.transaction(durable=True) as conn:
                self._store.releases.apply(conn, patterns, removed, trends, popular)
                self._store.set_cursor(conn, cursor, str(version))
                self._store.set_cursor(conn, LAST_SYNC_CURSOR, repr(self._clock.now()))
            self.refresh()

    def forget_release(self) -> None:
        """Drop the collective knowledge and rewind the release cursor, in one durable
        commit (the server's history restarted: it resends everything)."""
        with self._lock:
            with self._store.transaction(durable=True) as conn:
                self._store.releases.forget(conn)
                self._store.set_cursor(conn, RELEASE_CURSOR, "0")
            self.refresh()

    def collective(self) -> tuple[list[ConsolidatedPattern], list[Trend]]:
        """The released patterns and trends the brain holds."""
        return self._store.releases.load()

    def refresh(self) -> None:
        """Rebuild the learner's collective knowledge from the stored release."""
        with self._lock:
            codebook = self._titles.codebook
            self._learner.refresh_collective(
                *self._store.releases.load(),
                None if codebook is None else codebook.centroids,
                self._clock.now(),
            )

    # -- reports -----------------------------------------------------------------------
    def started_since(self, episode_id: int) -> StartedTitles | None:
        """The titles started after ``episode_id``; None when no episode is newer."""
        episodes = self._store.episodes.after(episode_id)
        if not episodes:
            return None
        with self._lock:
            catalog = self._titles.catalog
            started = {
                catalog.ids[catalog.row_of_key[e.item_key]]
                for e in episodes
                if e.kind in _STARTED
                and e.item_key is not None
                and e.item_key in catalog.row_of_key
            }
        return StartedTitles(episodes[-1].id, sorted(started))
