"""Popularity's SQL, run inside the caller's transaction: queued OLH and two-server
reports, support counts and the released list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omega.protocol.messages import FrequencyReport, ItemScore, SharedReport
from omega.protocol.validation import MAX_POPULAR_PER_PULL
from omega.storage._codec import decode_share, encode_share
from omega.storage._sql import Tx
from omega.storage.base import SupportCounts

__all__ = [
    "Raced",
    "counts",
    "current",
    "fold",
    "insert_reports",
    "insert_shares",
    "pending_reports",
    "pending_shares",
    "popular_between",
    "tag_shares",
    "upsert_popular",
]


class Raced(Exception):
    """Another worker folded some of the reports first (raised to roll back)."""


def insert_reports(tx: Tx, reports: Sequence[FrequencyReport], now: float) -> None:
    tx.many(
        "INSERT INTO pending_reports (seed, value, buckets, epsilon, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [(r.seed, r.value, r.buckets, r.epsilon, now) for r in reports],
    )


def insert_shares(tx: Tx, shares: Sequence[SharedReport], now: float) -> None:
    tx.many(
        "INSERT INTO pending_shares (body, created_at) VALUES (?, ?)",
        [(encode_share(r), now) for r in shares],
    )


def pending_reports(tx: Tx, limit: int) -> list[tuple[int, FrequencyReport]]:
    rows = tx.rows(
        "SELECT seq, seed, value, buckets, epsilon FROM pending_reports ORDER BY seq LIMIT ?",
        (limit,),
    )
    return [
        (r[0], FrequencyReport(seed=r[1], value=r[2], buckets=r[3], epsilon=r[4])) for r in rows
    ]


def pending_shares(tx: Tx, limit: int) -> list[tuple[int, SharedReport, str | None]]:
    rows = tx.rows(
        "SELECT seq, body, batch FROM pending_shares ORDER BY batch IS NULL, batch, seq LIMIT ?",
        (limit,),
    )
    return [(r[0], decode_share(bytes(r[1])), r[2]) for r in rows]


def tag_shares(tx: Tx, seqs: list[int], batch: str) -> None:
    tx.run(
        f"UPDATE pending_shares SET batch = ? WHERE seq {tx.dialect.any_of}",
        (batch, tx.dialect.array(seqs)),
    )


def counts(tx: Tx, codebook_id: str) -> list[SupportCounts]:
    rows = tx.rows(
        "SELECT buckets, epsilon, reports, support, noise_variance FROM popularity_counts"
        " WHERE codebook_id = ? ORDER BY buckets, epsilon",
        (codebook_id,),
    )
    return [SupportCounts(codebook_id, r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]


def fold(tx: Tx, table: str, seqs: list[int], counts: list[SupportCounts]) -> None:
    """Delete ``seqs`` from the queue ``table`` and save ``counts``; ``Raced`` if any of
    them was gone."""
    deleted = tx.run(
        f"DELETE FROM {table} WHERE seq {tx.dialect.any_of}", (tx.dialect.array(seqs),)
    )
    if deleted != len(seqs):
        raise Raced
    tx.many(
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


def upsert_popular(tx: Tx, popular: Sequence[ItemScore], version: int) -> None:
    tx.many(
        "INSERT INTO popular (item_id, score, version) VALUES (?, ?, ?) ON CONFLICT (item_id)"
        " DO UPDATE SET score = excluded.score, version = excluded.version",
        [(p.item_id, p.score, version) for p in popular],
    )


_POPULAR = "SELECT item_id, score FROM popular WHERE score > 0 ORDER BY score DESC, item_id"


def popular_between(tx: Tx, since: int, upto: int) -> list[ItemScore]:
    """The whole current list (best first), if it changed in (since, upto]; else []."""
    if tx.row("SELECT 1 FROM popular WHERE version > ? AND version <= ? LIMIT 1", (since, upto)):
        return _scores(tx.rows(_POPULAR + " LIMIT ?", (MAX_POPULAR_PER_PULL,)))
    return []


def current(tx: Tx) -> list[ItemScore]:
    """The released list (score > 0), best first."""
    return _scores(tx.rows(_POPULAR))


def _scores(rows: list[tuple[Any, ...]]) -> list[ItemScore]:
    return [ItemScore(item_id=r[0], score=r[1]) for r in rows]
