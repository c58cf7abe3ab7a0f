"""The brain store's tables the sync client reads and writes: the outbox of pattern
changes, the push in flight, and the collective knowledge pulled from the constellation.

A mixin of :class:`omega.brain.store.BrainStore` (kept apart by concept: what crosses the
wire, not what the brain learns). The outbox commits durably (``synchronous=FULL``): a
pattern leaves it only when the server acknowledged its batch.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager

from omega.protocol.messages import ConsolidatedPattern, PatternContext, Trend

__all__ = ["SyncTables", "parse_cells"]


def parse_cells(text: str) -> tuple[int, ...]:
    """Cells stored as comma-separated text."""
    return tuple(int(c) for c in text.split(",") if c)


class SyncTables:
    """Outbox, in-flight batch and collective tables; the connection is the store's."""

    conn: sqlite3.Connection
    lock: threading.RLock

    # Provided by the store.
    def transaction(self, *, durable: bool = False) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def set_cursor(self, conn: sqlite3.Connection, name: str, value: str) -> None:
        raise NotImplementedError

    def count(self, table: str) -> int:
        raise NotImplementedError

    # -- collective knowledge ------------------------------------------------------------
    def apply_release(
        self,
        conn: sqlite3.Connection,
        patterns: Iterable[ConsolidatedPattern],
        removed: Iterable[str],
        trends: Iterable[Trend],
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

    def load_collective(self) -> tuple[list[ConsolidatedPattern], list[Trend]]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT id, task, cells, time_bucket, day_type, success_rate, support, "
                "viewers, weight, version FROM collective"
            ).fetchall()
            trend_rows = self.conn.execute("SELECT cell, score, version FROM trends").fetchall()
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

    # -- outbox --------------------------------------------------------------------------
    def enqueue(self, conn: sqlite3.Connection, changes: Iterable[tuple[str, str]]) -> None:
        """Queue pattern changes; a newer change to a pattern in flight detaches it from
        that batch, so the ack of the old batch cannot drop the newer change."""
        conn.executemany(
            "INSERT INTO outbox (pattern_id, op, seq, batch_id) VALUES (?, ?, "
            "(SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox), NULL) "
            "ON CONFLICT (pattern_id) DO UPDATE SET op = excluded.op, seq = excluded.seq, "
            "batch_id = NULL",
            list(changes),
        )

    def outbox_pending(self, limit: int) -> list[tuple[str, str]]:
        with self.lock:
            return [
                (r[0], r[1])
                for r in self.conn.execute(
                    "SELECT pattern_id, op FROM outbox WHERE batch_id IS NULL ORDER BY seq LIMIT ?",
                    (limit,),
                )
            ]

    def outbox_size(self) -> int:
        return self.count("outbox")

    def begin_batch(
        self,
        batch_id: str,
        payload: bytes,
        pattern_ids: Sequence[str],
        now: float,
        cursors: Mapping[str, str] | None = None,
    ) -> None:
        """Record an outgoing push before sending it, so a retry resends the same bytes;
        ``cursors`` (e.g. the report cursor) move in the same durable transaction."""
        with self.transaction(durable=True) as conn:
            for name, value in (cursors or {}).items():
                self.set_cursor(conn, name, value)
            conn.execute(
                "INSERT INTO inflight (batch_id, payload, created_at) VALUES (?, ?, ?)",
                (batch_id, payload, now),
            )
            conn.executemany(
                "UPDATE outbox SET batch_id = ? WHERE pattern_id = ? AND batch_id IS NULL",
                [(batch_id, pid) for pid in pattern_ids],
            )

    def inflight(self) -> tuple[str, bytes] | None:
        with self.lock:
            row = self.conn.execute(
                "SELECT batch_id, payload FROM inflight ORDER BY created_at LIMIT 1"
            ).fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]))

    def ack_batch(self, batch_id: str) -> int:
        """The server acknowledged the batch: its patterns leave the outbox."""
        with self.transaction(durable=True) as conn:
            removed = conn.execute("DELETE FROM outbox WHERE batch_id = ?", (batch_id,)).rowcount
            conn.execute("DELETE FROM inflight WHERE batch_id = ?", (batch_id,))
        return int(removed)
