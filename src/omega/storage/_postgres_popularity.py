"""PostgreSQL side of popularity: queued OLH reports, support counts and the released list."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from omega.protocol.messages import FrequencyReport, ItemScore, SharedReport
from omega.protocol.validation import MAX_POPULAR_PER_PULL
from omega.storage._codec import decode_share, encode_share, queue_table
from omega.storage._release import check_limit
from omega.storage.base import ReportQueue, SupportCounts

__all__ = [
    "PostgresPopularity",
    "insert_reports",
    "insert_shares",
    "popular_between",
    "upsert_popular",
]

Cursor = psycopg.Cursor[tuple[Any, ...]]


def insert_reports(cur: Cursor, reports: Sequence[FrequencyReport], now: float) -> None:
    cur.executemany(
        "INSERT INTO pending_reports (seed, value, buckets, epsilon, created_at)"
        " VALUES (%s, %s, %s, %s, %s)",
        [(r.seed, r.value, r.buckets, r.epsilon, now) for r in reports],
    )


def insert_shares(cur: Cursor, shares: Sequence[SharedReport], now: float) -> None:
    cur.executemany(
        "INSERT INTO pending_shares (body, created_at) VALUES (%s, %s)",
        [(encode_share(r), now) for r in shares],
    )


def upsert_popular(cur: Cursor, popular: Sequence[ItemScore], version: int) -> None:
    cur.executemany(
        "INSERT INTO popular (item_id, score, version) VALUES (%s, %s, %s) ON CONFLICT (item_id)"
        " DO UPDATE SET score = EXCLUDED.score, version = EXCLUDED.version",
        [(p.item_id, p.score, version) for p in popular],
    )


def popular_between(cur: Cursor, since: int, upto: int) -> list[ItemScore]:
    """The whole current list (best first), if it changed in (since, upto]; else []."""
    cur.execute("SELECT 1 FROM popular WHERE version > %s AND version <= %s LIMIT 1", (since, upto))
    if cur.fetchone() is None:
        return []
    cur.execute(
        "SELECT item_id, score FROM popular WHERE score > 0 ORDER BY score DESC, item_id LIMIT %s",
        (MAX_POPULAR_PER_PULL,),
    )
    return [ItemScore(item_id=r[0], score=r[1]) for r in cur.fetchall()]


class PostgresPopularity:
    """Mixed into ``PostgresStorage``, which provides ``_tx``."""

    def _tx(self, *, snapshot: bool = False) -> AbstractContextManager[Cursor]:  # pragma: no cover
        raise NotImplementedError

    def pending_reports(self, *, limit: int) -> list[tuple[int, FrequencyReport]]:
        check_limit(limit)
        with self._tx() as cur:
            cur.execute(
                "SELECT seq, seed, value, buckets, epsilon FROM pending_reports"
                " ORDER BY seq LIMIT %s",
                (limit,),
            )
            rows = cur.fetchall()
        return [
            (r[0], FrequencyReport(seed=r[1], value=r[2], buckets=r[3], epsilon=r[4])) for r in rows
        ]

    def pending_shares(self, *, limit: int) -> list[tuple[int, SharedReport, str | None]]:
        check_limit(limit)
        with self._tx() as cur:
            cur.execute(
                "SELECT seq, body, batch FROM pending_shares"
                " ORDER BY batch IS NULL, batch, seq LIMIT %s",
                (limit,),
            )
            rows = cur.fetchall()
        return [(r[0], decode_share(bytes(r[1])), r[2]) for r in rows]

    def tag_shares(self, *, seqs: list[int], batch: str) -> None:
        with self._tx() as cur:
            cur.execute("UPDATE pending_shares SET batch = %s WHERE seq = ANY(%s)", (batch, seqs))

    def popularity_counts(self, *, codebook_id: str) -> list[SupportCounts]:
        with self._tx() as cur:
            cur.execute(
                "SELECT buckets, epsilon, reports, support, noise_variance FROM popularity_counts"
                " WHERE codebook_id = %s ORDER BY buckets, epsilon",
                (codebook_id,),
            )
            rows = cur.fetchall()
        return [SupportCounts(codebook_id, r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]

    def fold_reports(
        self, *, seqs: list[int], counts: list[SupportCounts], queue: ReportQueue = "reports"
    ) -> bool:
        table = queue_table(queue)
        try:
            with self._tx() as cur:
                cur.execute(f"DELETE FROM {table} WHERE seq = ANY(%s)", (seqs,))
                if cur.rowcount != len(seqs):
                    raise _Raced
                cur.executemany(
                    "INSERT INTO popularity_counts (codebook_id, buckets, epsilon, reports,"
                    " support, noise_variance) VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (codebook_id, buckets, epsilon) DO UPDATE"
                    " SET reports = EXCLUDED.reports, support = EXCLUDED.support,"
                    " noise_variance = EXCLUDED.noise_variance",
                    [
                        (
                            k.codebook_id,
                            k.buckets,
                            k.epsilon,
                            k.reports,
                            k.support,
                            k.noise_variance,
                        )
                        for k in counts
                    ],
                )
        except _Raced:
            return False
        return True

    def current_popular(self) -> list[ItemScore]:
        with self._tx() as cur:
            cur.execute(
                "SELECT item_id, score FROM popular WHERE score > 0 ORDER BY score DESC, item_id"
            )
            rows = cur.fetchall()
        return [ItemScore(item_id=r[0], score=r[1]) for r in rows]


def _count_row(k: SupportCounts) -> tuple[str, int, float, int, bytes, float]:
    return (k.codebook_id, k.buckets, k.epsilon, k.reports, k.support, k.noise_variance)


class _Raced(Exception):
    """Internal: another worker folded some of the reports first (rolls back)."""
