"""SQLite side of popularity: queued OLH reports, support counts and the released list."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TypeVar

from omega.protocol.messages import FrequencyReport, ItemScore, SharedReport
from omega.protocol.validation import MAX_POPULAR_PER_PULL
from omega.storage._codec import decode_share, encode_share, queue_table
from omega.storage._release import check_limit
from omega.storage.base import ReportQueue, SupportCounts

__all__ = [
    "SQLitePopularity",
    "insert_reports",
    "insert_shares",
    "popular_between",
    "upsert_popular",
]

T = TypeVar("T")


def insert_reports(c: sqlite3.Connection, reports: Sequence[FrequencyReport], now: float) -> None:
    c.executemany(
        "INSERT INTO pending_reports (seed, value, buckets, epsilon, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [(r.seed, r.value, r.buckets, r.epsilon, now) for r in reports],
    )


def insert_shares(c: sqlite3.Connection, shares: Sequence[SharedReport], now: float) -> None:
    c.executemany(
        "INSERT INTO pending_shares (body, created_at) VALUES (?, ?)",
        [(encode_share(r), now) for r in shares],
    )


def upsert_popular(c: sqlite3.Connection, popular: Sequence[ItemScore], version: int) -> None:
    c.executemany(
        "INSERT INTO popular (item_id, score, version) VALUES (?, ?, ?) ON CONFLICT (item_id)"
        " DO UPDATE SET score = excluded.score, version = excluded.version",
        [(p.item_id, p.score, version) for p in popular],
    )


def popular_between(c: sqlite3.Connection, since: int, upto: int) -> list[ItemScore]:
    """The whole current list (best first), if it changed in (since, upto]; else []."""
    changed = c.execute(
        "SELECT 1 FROM popular WHERE version > ? AND version <= ? LIMIT 1", (since, upto)
    ).fetchone()
    if changed is None:
        return []
    rows = c.execute(
        "SELECT item_id, score FROM popular WHERE score > 0 ORDER BY score DESC, item_id LIMIT ?",
        (MAX_POPULAR_PER_PULL,),
    )
    return [ItemScore(item_id=r[0], score=r[1]) for r in rows]


class SQLitePopularity:
    """Mixed into ``SQLiteStorage``, which provides ``_read`` and ``_write``."""

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:  # pragma: no cover
        raise NotImplementedError

    def _write(self, job: Callable[[sqlite3.Connection], T]) -> T:  # pragma: no cover
        raise NotImplementedError

    def pending_reports(self, *, limit: int) -> list[tuple[int, FrequencyReport]]:
        check_limit(limit)
        with self._read() as c:
            rows = c.execute(
                "SELECT seq, seed, value, buckets, epsilon FROM pending_reports"
                " ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            (r[0], FrequencyReport(seed=r[1], value=r[2], buckets=r[3], epsilon=r[4])) for r in rows
        ]

    def pending_shares(self, *, limit: int) -> list[tuple[int, SharedReport, str | None]]:
        check_limit(limit)
        with self._read() as c:
            rows = c.execute(
                "SELECT seq, body, batch FROM pending_shares"
                " ORDER BY batch IS NULL, batch, seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [(r[0], decode_share(bytes(r[1])), r[2]) for r in rows]

    def tag_shares(self, *, seqs: list[int], batch: str) -> None:
        self._write(
            lambda c: c.executemany(
                "UPDATE pending_shares SET batch = ? WHERE seq = ?", [(batch, s) for s in seqs]
            )
        )

    def popularity_counts(self, *, codebook_id: str) -> list[SupportCounts]:
        with self._read() as c:
            rows = c.execute(
                "SELECT buckets, epsilon, reports, support, noise_variance FROM popularity_counts"
                " WHERE codebook_id = ? ORDER BY buckets, epsilon",
                (codebook_id,),
            ).fetchall()
        return [SupportCounts(codebook_id, r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]

    def fold_reports(
        self, *, seqs: list[int], counts: list[SupportCounts], queue: ReportQueue = "reports"
    ) -> bool:
        table = queue_table(queue)

        def write(c: sqlite3.Connection) -> bool:
            deleted = c.executemany(
                f"DELETE FROM {table} WHERE seq = ?", [(s,) for s in seqs]
            ).rowcount
            if deleted != len(seqs):
                raise _Raced
            c.executemany(
                "INSERT INTO popularity_counts (codebook_id, buckets, epsilon, reports, support,"
                " noise_variance) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (codebook_id, buckets, epsilon) DO UPDATE"
                " SET reports = excluded.reports, support = excluded.support,"
                " noise_variance = excluded.noise_variance",
                [
                    (k.codebook_id, k.buckets, k.epsilon, k.reports, k.support, k.noise_variance)
                    for k in counts
                ],
            )
            return True

        try:
            return self._write(write)
        except _Raced:
            return False

    def current_popular(self) -> list[ItemScore]:
        with self._read() as c:
            rows = c.execute(
                "SELECT item_id, score FROM popular WHERE score > 0 ORDER BY score DESC, item_id"
            ).fetchall()
        return [ItemScore(item_id=r[0], score=r[1]) for r in rows]


class _Raced(Exception):
    """Internal: another worker folded some of the reports first (rolls back)."""
