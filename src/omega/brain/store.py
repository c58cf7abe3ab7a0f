"""The brain's SQLite file: catalog, episodes, patterns, collective knowledge, skills,
tiers, outbox and cursors.

Durability: WAL. Each tracked event commits on its own with ``synchronous=NORMAL`` (it
survives a crash of the TV process). Derived state (tiers, patterns) is flushed in
batches with a watermark and rebuilt from later episodes on open. The outbox and sync
cursors commit with ``synchronous=FULL``: they must survive power loss. The tables the
sync client uses (outbox, in-flight batch, collective knowledge) are in ``_store_sync``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from omega.brain._migrations import apply_migrations
from omega.brain._store_sync import SyncTables, parse_cells
from omega.brain.patterns import PatternStat
from omega.errors import CorruptStoreError, StoreError

__all__ = ["BrainStore", "EpisodeRow", "ItemRow"]


@dataclass(frozen=True, slots=True)
class ItemRow:
    key: int
    item_id: str
    title: str
    genres: tuple[str, ...]
    year: int | None
    runtime_min: int | None
    tags: str
    description: str
    cell: int


@dataclass(frozen=True, slots=True)
class EpisodeRow:
    id: int
    ts: float
    kind: str
    item_key: int | None
    session_id: str
    time_bucket: str
    day_type: str
    reward: float
    success: bool
    critique: str
    detail: dict[str, object]


def _episode(r: tuple[Any, ...]) -> EpisodeRow:
    return EpisodeRow(
        int(r[0]),
        float(r[1]),
        str(r[2]),
        None if r[3] is None else int(r[3]),
        str(r[4]),
        str(r[5]),
        str(r[6]),
        float(r[7]),
        bool(r[8]),
        str(r[9]),
        json.loads(r[10]),
    )


class BrainStore(SyncTables):
    """One connection, used under a lock (the brain is one TV's process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        try:
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("PRAGMA busy_timeout=5000")
            # Checkpoints fsync the database file; fewer, larger ones keep tracking fast.
            self.conn.execute("PRAGMA wal_autocheckpoint=4000")
        except sqlite3.DatabaseError as exc:
            raise CorruptStoreError(f"{path} is not a readable brain database: {exc}") from exc
        self.schema_version = apply_migrations(self.conn, str(path))

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    @contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT; ``durable`` commits with synchronous=FULL (fsync)."""
        with self.lock:
            if durable:
                self.conn.execute("PRAGMA synchronous=FULL")
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
                self.conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"brain database {self.path}: {exc}") from exc
            finally:
                if durable:
                    self.conn.execute("PRAGMA synchronous=NORMAL")

    def integrity_ok(self) -> bool:
        with self.lock:
            return bool(self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    # -- meta and cursors ------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self.lock:
            row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def set_meta(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def get_cursor(self, name: str, default: str = "0") -> str:
        with self.lock:
            row = self.conn.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return default if row is None else str(row[0])

    def set_cursor(self, conn: sqlite3.Connection, name: str, value: str) -> None:
        conn.execute(
            "INSERT INTO cursors (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    # -- catalog -----------------------------------------------------------------------
    def upsert_items(
        self,
        conn: sqlite3.Connection,
        rows: Sequence[tuple[str, str, str, int | None, int | None, str, str, bytes, int]],
    ) -> list[int]:
        keys = []
        for row in rows:
            cur = conn.execute(
                "INSERT INTO items (item_id, title, genres, year, runtime_min, tags, "
                "description, embedding, cell) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (item_id) DO UPDATE SET title = excluded.title, "
                "genres = excluded.genres, year = excluded.year, "
                "runtime_min = excluded.runtime_min, tags = excluded.tags, "
                "description = excluded.description, embedding = excluded.embedding, "
                "cell = excluded.cell RETURNING key",
                row,
            )
            keys.append(int(cur.fetchone()[0]))
        return keys

    def remove_items(self, conn: sqlite3.Connection, item_ids: Iterable[str]) -> list[int]:
        keys = []
        for item_id in item_ids:
            row = conn.execute(
                "DELETE FROM items WHERE item_id = ? RETURNING key", (item_id,)
            ).fetchone()
            if row is not None:
                keys.append(int(row[0]))
        return keys

    def set_cells(
        self, conn: sqlite3.Connection, keys: Sequence[int], cells: Sequence[int]
    ) -> None:
        conn.executemany(
            "UPDATE items SET cell = ? WHERE key = ?",
            [(int(c), int(k)) for c, k in zip(cells, keys, strict=True)],
        )

    def load_items(self) -> tuple[list[ItemRow], npt.NDArray[np.float32]]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT key, item_id, title, genres, year, runtime_min, tags, description, "
                "cell, embedding FROM items ORDER BY key"
            ).fetchall()
        items = [
            ItemRow(r[0], r[1], r[2], tuple(g for g in r[3].split("|") if g), *r[4:9]) for r in rows
        ]
        if not rows:
            return items, np.zeros((0, 0), dtype=np.float32)
        matrix = np.frombuffer(b"".join(r[9] for r in rows), dtype=np.float16)
        return items, matrix.reshape(len(rows), -1).astype(np.float32)

    # -- episodes ------------------------------------------------------------------------
    def insert_episode(
        self,
        *,
        ts: float,
        kind: str,
        item_key: int | None,
        session_id: str,
        time_bucket: str,
        day_type: str,
        reward: float,
        success: bool,
        critique: str,
        detail: dict[str, object],
    ) -> int:
        """Commit one episode (synchronous=NORMAL: durable against a process crash)."""
        with self.lock:
            try:
                cur = self.conn.execute(
                    "INSERT INTO episodes (ts, kind, item_key, session_id, time_bucket, "
                    "day_type, reward, success, critique, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        ts,
                        kind,
                        item_key,
                        session_id,
                        time_bucket,
                        day_type,
                        reward,
                        int(success),
                        critique,
                        json.dumps(detail, separators=(",", ":")),
                    ),
                )
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"brain database {self.path}: {exc}") from exc
            return int(cur.lastrowid or 0)

    def episodes_after(self, episode_id: int) -> list[EpisodeRow]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT id, ts, kind, item_key, session_id, time_bucket, day_type, reward, "
                "success, critique, detail FROM episodes WHERE id > ? ORDER BY id",
                (episode_id,),
            ).fetchall()
        return [_episode(r) for r in rows]

    def recent_episodes(self, limit: int) -> list[EpisodeRow]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT id, ts, kind, item_key, session_id, time_bucket, day_type, reward, "
                "success, critique, detail FROM episodes ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_episode(r) for r in rows]

    def interacted_item_keys(self) -> set[int]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT DISTINCT item_key FROM episodes WHERE item_key IS NOT NULL "
                "AND kind IN ('view', 'skip', 'rating')"
            ).fetchall()
        return {int(r[0]) for r in rows}

    def prune_episodes(self, conn: sqlite3.Connection, before_ts: float) -> int:
        return conn.execute("DELETE FROM episodes WHERE ts < ?", (before_ts,)).rowcount

    def count(self, table: str) -> int:
        assert table.isidentifier()
        with self.lock:
            return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    # -- patterns --------------------------------------------------------------------------
    def save_patterns(
        self, conn: sqlite3.Connection, stats: Iterable[PatternStat], deleted: Iterable[str]
    ) -> None:
        conn.executemany(
            "INSERT INTO patterns (id, task, cells, time_bucket, day_type, successes, support, "
            "version, updated_at, shared_rate, shared_support) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "successes = excluded.successes, support = excluded.support, "
            "version = excluded.version, updated_at = excluded.updated_at, "
            "shared_rate = excluded.shared_rate, shared_support = excluded.shared_support",
            [
                (
                    s.id,
                    s.key[0],
                    ",".join(map(str, s.key[1])),
                    s.key[2],
                    s.key[3],
                    s.successes,
                    s.support,
                    s.version,
                    s.updated_at,
                    s.shared_rate,
                    s.shared_support,
                )
                for s in stats
            ],
        )
        conn.executemany("DELETE FROM patterns WHERE id = ?", [(d,) for d in deleted])

    def load_patterns(self) -> list[PatternStat]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT task, cells, time_bucket, day_type, successes, support, version, "
                "updated_at, shared_rate, shared_support FROM patterns"
            ).fetchall()
        return [PatternStat((r[0], parse_cells(r[1]), r[2], r[3]), *r[4:]) for r in rows]

    # -- skills and tiers ----------------------------------------------------------------
    def save_skills(
        self, conn: sqlite3.Connection, rows: Iterable[tuple[str, str, float, float, float]]
    ) -> None:
        conn.executemany(
            "INSERT INTO skills (name, context, uses, successes, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name, context) DO UPDATE SET "
            "uses = excluded.uses, successes = excluded.successes, "
            "updated_at = excluded.updated_at",
            list(rows),
        )

    def load_skills(self) -> list[tuple[str, str, float, float, float]]:
        with self.lock:
            return [
                (r[0], r[1], r[2], r[3], r[4])
                for r in self.conn.execute(
                    "SELECT name, context, uses, successes, updated_at FROM skills"
                )
            ]

    def save_tiers(
        self, conn: sqlite3.Connection, rows: Iterable[tuple[str, bytes, float, float]]
    ) -> None:
        conn.executemany(
            "INSERT INTO tiers (name, vector, mass, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET vector = excluded.vector, mass = excluded.mass, "
            "updated_at = excluded.updated_at",
            list(rows),
        )

    def load_tiers(self) -> list[tuple[str, bytes, float, float]]:
        with self.lock:
            return [
                (r[0], r[1], r[2], r[3])
                for r in self.conn.execute("SELECT name, vector, mass, updated_at FROM tiers")
            ]

    # -- codebook ------------------------------------------------------------------------
    def save_codebook(
        self,
        conn: sqlite3.Connection,
        codebook_id: str,
        centroids: npt.NDArray[np.float32],
        origin: str,
    ) -> None:
        conn.execute(
            "INSERT INTO codebook (id, codebook_id, dim, k, centroids, origin) "
            "VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "codebook_id = excluded.codebook_id, dim = excluded.dim, k = excluded.k, "
            "centroids = excluded.centroids, origin = excluded.origin",
            (
                codebook_id,
                centroids.shape[1],
                centroids.shape[0],
                centroids.astype(np.float16).tobytes(),
                origin,
            ),
        )

    def load_codebook(self) -> tuple[str, npt.NDArray[np.float32], str] | None:
        with self.lock:
            row = self.conn.execute(
                "SELECT codebook_id, dim, k, centroids, origin FROM codebook WHERE id = 1"
            ).fetchone()
        if row is None:
            return None
        matrix = np.frombuffer(row[3], dtype=np.float16).reshape(row[2], row[1])
        return str(row[0]), matrix.astype(np.float32), str(row[4])

    def clear_patterns(self, conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM patterns")

    # -- footprint -----------------------------------------------------------------------
    def footprint_bytes(self, *, exclude_catalog: bool) -> int:
        """Bytes the database occupies, optionally without the catalog's vectors."""
        with self.lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            page_size = int(self.conn.execute("PRAGMA page_size").fetchone()[0])
            pages = int(self.conn.execute("PRAGMA page_count").fetchone()[0])
            free = int(self.conn.execute("PRAGMA freelist_count").fetchone()[0])
            total = (pages - free) * page_size
            if exclude_catalog:
                catalog = self.conn.execute(
                    "SELECT COALESCE(SUM(LENGTH(embedding)), 0) FROM items"
                ).fetchone()[0]
                total -= int(catalog)
        return total
