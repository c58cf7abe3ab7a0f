"""Co-watch knowledge in ``brain.db``: the released table of co-watch neighbours and the
record of the pairs this TV contributed (``CowatchTables``; schema
``migrations/0004_cowatch.sql``).

The table is keyed by catalog position (the server's catalog order, see
``SyncState.catalog_order``): a new order makes the stored positions meaningless, so
``SyncState`` forgets the table when the order changes. The record of contributed pairs
names the brain's own title keys, which do not move.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from omega.brain.store import BrainStore

__all__ = ["CowatchRows", "CowatchTables"]

_VERSION = "cowatch_version"  # meta: the version of the last table page applied
_LE_I32 = np.dtype("<i4")


@dataclass(frozen=True, slots=True)
class CowatchRows:
    """The whole stored table as flat arrays: ``sources[i]`` → ``neighbours[i]`` with
    ``counts[i]`` (catalog positions and quantised counts)."""

    sources: npt.NDArray[np.int64]
    neighbours: npt.NDArray[np.int64]
    counts: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.sources)


class CowatchTables:
    """``cowatch`` (the released neighbour lists) and ``cowatch_sent`` (pairs contributed)."""

    def __init__(self, store: BrainStore) -> None:
        self._store = store

    # -- the released table ----------------------------------------------------------
    def version(self) -> int:
        return int(self._store.get_meta(_VERSION, "0") or 0)

    def apply(
        self,
        conn: sqlite3.Connection,
        version: int,
        rows: Iterable[tuple[int, Sequence[tuple[int, int]]]],
    ) -> int:
        """Replace the neighbour lists of the sources in ``rows`` (an empty list removes
        the source); other sources stay. Returns the number of sources written."""
        replace, remove = [], []
        for source, neighbours in rows:
            if neighbours:
                pos = np.fromiter((n for n, _ in neighbours), _LE_I32, len(neighbours))
                cnt = np.fromiter((c for _, c in neighbours), _LE_I32, len(neighbours))
                replace.append((source, pos.tobytes(), cnt.tobytes()))
            else:
                remove.append((source,))
        conn.executemany(
            "INSERT INTO cowatch (source, neighbours, counts) VALUES (?, ?, ?) "
            "ON CONFLICT (source) DO UPDATE SET neighbours = excluded.neighbours, "
            "counts = excluded.counts",
            replace,
        )
        conn.executemany("DELETE FROM cowatch WHERE source = ?", remove)
        self._store.set_meta(conn, _VERSION, str(version))
        return len(replace) + len(remove)

    def forget(self, conn: sqlite3.Connection) -> None:
        """Drop the table (its positions name an order that no longer holds)."""
        conn.execute("DELETE FROM cowatch")
        self._store.set_meta(conn, _VERSION, "0")

    def load(self) -> CowatchRows:
        with self._store.lock:
            stored = self._store.conn.execute(
                "SELECT source, neighbours, counts FROM cowatch"
            ).fetchall()
        if not stored:
            empty = np.zeros(0, np.int64)
            return CowatchRows(empty, empty, np.zeros(0, np.float32))
        neighbours = [np.frombuffer(r[1], _LE_I32) for r in stored]
        lengths = np.fromiter((len(n) for n in neighbours), np.int64, len(neighbours))
        sources = np.fromiter((r[0] for r in stored), np.int64, len(stored))
        return CowatchRows(
            np.repeat(sources, lengths),
            np.concatenate(neighbours).astype(np.int64),
            np.concatenate([np.frombuffer(r[2], _LE_I32) for r in stored]).astype(np.float32),
        )

    def engaged_keys(self, limit: int, min_reward: float) -> list[int]:
        """The titles of the newest ``limit`` views and ratings with reward ≥
        ``min_reward``, oldest first (a title may repeat)."""
        with self._store.lock:
            found = self._store.conn.execute(
                "SELECT item_key FROM episodes WHERE kind IN ('view', 'rating') "
                "AND item_key IS NOT NULL AND reward >= ? ORDER BY id DESC LIMIT ?",
                (min_reward, limit),
            ).fetchall()
        return [int(r[0]) for r in reversed(found)]

    # -- pairs contributed ------------------------------------------------------------
    def sent(self) -> set[tuple[int, int]]:
        """Every (a, b) pair of title keys this TV contributed."""
        with self._store.lock:
            return {
                (int(a), int(b))
                for a, b in self._store.conn.execute("SELECT a, b FROM cowatch_sent")
            }

    def sent_in(self, epoch: int) -> list[tuple[int, int]]:
        """The pairs contributed in ``epoch``, in the order they were chosen."""
        with self._store.lock:
            return [
                (int(a), int(b))
                for a, b in self._store.conn.execute(
                    "SELECT a, b FROM cowatch_sent WHERE epoch = ? ORDER BY rowid", (epoch,)
                )
            ]

    def record(
        self, conn: sqlite3.Connection, epoch: int, pairs: Sequence[tuple[int, int]]
    ) -> None:
        conn.executemany(
            "INSERT INTO cowatch_sent (a, b, epoch) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [(a, b, epoch) for a, b in pairs],
        )
