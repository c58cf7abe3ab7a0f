"""The tables that cross the wire, in ``brain.db``: the outbox of pattern changes and the
push in flight (``OutboxTables``), and the collective knowledge pulled from the
constellation — released patterns, trends and the title popularity list
(``ReleaseTables``).

The outbox commits durably (``synchronous=FULL``): a pattern leaves it only when the
server acknowledged its batch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from omega.brain.patterns import parse_cells
from omega.protocol.messages import ConsolidatedPattern, ItemScore, PatternContext, Trend

if TYPE_CHECKING:
    from omega.brain.store import BrainStore

__all__ = ["InflightBatch", "OutboxTables", "Queued", "ReleaseTables"]


@dataclass(frozen=True, slots=True)
class Queued:
    """An outbox row: a pattern's change ('upsert' or 'remove') at queue position ``seq``."""

    pattern_id: str
    op: str
    seq: int


@dataclass(frozen=True, slots=True)
class InflightBatch:
    """A push recorded before it was sent: resent byte for byte until acknowledged."""

    batch_id: str
    payload: bytes


class OutboxTables:
    """``outbox`` (pattern changes not yet acknowledged) and ``inflight`` (the batch sent)."""

    def __init__(self, store: BrainStore) -> None:
        self._store = store

    def enqueue(self, conn: sqlite3.Connection, changes: Iterable[tuple[str, str]]) -> None:
        """Queue (pattern id, op) changes; a newer change to a pattern in flight detaches it
        from that batch, so the ack of the old batch cannot drop the newer change."""
        conn.executemany(
            "INSERT INTO outbox (pattern_id, op, seq, batch_id) VALUES (?, ?, "
            "(SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox), NULL) "
            "ON CONFLICT (pattern_id) DO UPDATE SET op = excluded.op, seq = excluded.seq, "
            "batch_id = NULL",
            list(changes),
        )

    def pending(self, limit: int) -> list[Queued]:
        """The oldest entries not in a batch."""
        with self._store.lock:
            return [
                Queued(r[0], r[1], r[2])
                for r in self._store.conn.execute(
                    "SELECT pattern_id, op, seq FROM outbox WHERE batch_id IS NULL "
                    "ORDER BY seq LIMIT ?",
                    (limit,),
                )
            ]

    def size(self) -> int:
        return self._store.count("outbox")

    def begin_batch(
        self,
        batch: InflightBatch,
        sent: Sequence[tuple[str, int]],
        now: float,
        cursors: Mapping[str, str],
    ) -> None:
        """Record an outgoing push before sending it, so a retry resends the same bytes;
        ``cursors`` (e.g. the report cursor) move in the same durable transaction. Only
        the (pattern id, seq) rows ``sent`` carries join the batch."""
        store = self._store
        with store.transaction(durable=True) as conn:
            for name, value in cursors.items():
                store.set_cursor(conn, name, value)
            conn.execute(
                "INSERT INTO inflight (batch_id, payload, created_at) VALUES (?, ?, ?)",
                (batch.batch_id, batch.payload, now),
            )
            conn.executemany(
                "UPDATE outbox SET batch_id = ? WHERE pattern_id = ? AND seq = ? "
                "AND batch_id IS NULL",
                [(batch.batch_id, pid, seq) for pid, seq in sent],
            )

    def inflight(self) -> InflightBatch | None:
        with self._store.lock:
            row = self._store.conn.execute(
                "SELECT batch_id, payload FROM inflight ORDER BY created_at LIMIT 1"
            ).fetchone()
        return None if row is None else InflightBatch(str(row[0]), bytes(row[1]))

    def abandon_batch(self, batch_id: str) -> None:
        """The batch will not be sent: its entries rejoin the queue, in one durable commit."""
        with self._store.transaction(durable=True) as conn:
            conn.execute("UPDATE outbox SET batch_id = NULL WHERE batch_id = ?", (batch_id,))
            conn.execute("DELETE FROM inflight WHERE batch_id = ?", (batch_id,))

    def ack_batch(self, batch_id: str) -> int:
        """The server acknowledged the batch: its patterns leave the outbox."""
        with self._store.transaction(durable=True) as conn:
            removed = conn.execute("DELETE FROM outbox WHERE batch_id = ?", (batch_id,)).rowcount
            conn.execute("DELETE FROM inflight WHERE batch_id = ?", (batch_id,))
        return int(removed)

    def clear(self, conn: sqlite3.Connection) -> None:
        """Drop every queued change and the batch in flight (patterns named in an old
        codebook's cells mean nothing under a new one)."""
        conn.execute("DELETE FROM outbox")
        conn.execute("DELETE FROM inflight")


class ReleaseTables:
    """``collective``, ``trends`` and ``popular``: what the constellation released."""

    def __init__(self, store: BrainStore) -> None:
        self._store = store
        #: Bumped whenever the popularity list is replaced or dropped (what is worked out
        #: from it is kept until then: most pages of a release leave it as it is).
        self.popular_generation = 0

    def apply(
        self,
        conn: sqlite3.Connection,
        patterns: Iterable[ConsolidatedPattern],
        removed: Iterable[str],
        trends: Iterable[Trend],
        popular: Iterable[ItemScore],
    ) -> None:
        conn.executemany(
            "INSERT INTO collective (id, task, cells, time_bucket, day_type, success_rate, "
            "support, viewers, weight, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET success_rate = excluded.success_rate, "
            "support = excluded.support, viewers = excluded.viewers, "
            "weight = excluded.weight, version = excluded.version, cells = excluded.cells "
            # Order- and duplicate-free: a re-sent or late older release never wins.
            "WHERE excluded.version >= collective.version",
            [
                (
                    p.id,
                    p.task,
                    ",".join(map(str, p.cells)),
                    p.context.time_bucket,
                    p.context.day_type,
                    p.success_rate,
                    p.support,
                    p.viewers,
                    p.weight,
                    p.version,
                )
                for p in patterns
            ],
        )
        conn.executemany("DELETE FROM collective WHERE id = ?", [(r,) for r in removed])
        trends = list(trends)
        if trends:
            conn.execute("DELETE FROM trends")
            conn.executemany(
                "INSERT INTO trends (cell, score, version) VALUES (?, ?, ?) "
                "ON CONFLICT (cell) DO UPDATE SET score = excluded.score",
                [(t.cell, t.score, t.version) for t in trends],
            )
        self._replace_popular(conn, popular)

    def _replace_popular(self, conn: sqlite3.Connection, entries: Iterable[ItemScore]) -> None:
        """Replace the popularity list with a released one (none: keep the current list).

        The constellation sends its whole current list (best first, cut to the pull's
        byte budget) whenever it changed, so replacing never keeps a stale title."""
        rows = [(e.item_id, float(e.score)) for e in entries]
        if not rows:
            return
        self.popular_generation += 1
        conn.execute("DELETE FROM popular")
        conn.executemany(
            "INSERT INTO popular (item_id, score) VALUES (?, ?) "
            "ON CONFLICT (item_id) DO UPDATE SET score = excluded.score",
            [r for r in rows if r[1] > 0],
        )

    def forget(self, conn: sqlite3.Connection) -> None:
        """Drop every released pattern, trend and popular title."""
        self.popular_generation += 1
        conn.execute("DELETE FROM collective")
        conn.execute("DELETE FROM trends")
        conn.execute("DELETE FROM popular")

    def load(self) -> tuple[list[ConsolidatedPattern], list[Trend]]:
        """The released patterns and trends held."""
        with self._store.lock:
            rows = self._store.conn.execute(
                "SELECT id, task, cells, time_bucket, day_type, success_rate, support, "
                "viewers, weight, version FROM collective"
            ).fetchall()
            trend_rows = self._store.conn.execute(
                "SELECT cell, score, version FROM trends"
            ).fetchall()
        patterns = [
            ConsolidatedPattern(
                id=r[0],
                task=r[1],
                cells=parse_cells(r[2]),
                context=PatternContext(time_bucket=r[3], day_type=r[4]),
                success_rate=r[5],
                support=r[6],
                viewers=r[7],
                weight=r[8],
                version=r[9],
            )
            for r in rows
        ]
        return patterns, [Trend(cell=c, score=s, version=v) for c, s, v in trend_rows]

    def popular(self) -> dict[str, float]:
        """The released popularity list: item id → score in (0, 1]."""
        with self._store.lock:
            return {
                str(item_id): float(score)
                for item_id, score in self._store.conn.execute("SELECT item_id, score FROM popular")
            }
