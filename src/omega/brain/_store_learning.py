"""What the brain learns from, and what it learned, in ``brain.db``: episodes, patterns,
skills and memory tiers."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from omega.brain.episodes import Context, Episode, EpisodeRow
from omega.brain.patterns import PatternStat, parse_cells
from omega.brain.skills import SkillStat
from omega.brain.tiers import Tier
from omega.errors import StoreError

if TYPE_CHECKING:
    from omega.brain.store import BrainStore

__all__ = ["EpisodeTable", "LearnedTables", "StoredTier"]

SkillKey = tuple[str, str]  # (skill name, context)


@dataclass(frozen=True, slots=True)
class StoredTier:
    name: str
    vector: npt.NDArray[np.float32]
    mass: float
    updated_at: float


_EPISODE_COLUMNS = (
    "id, ts, kind, item_key, session_id, time_bucket, day_type, reward, success, critique, detail"
)


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


class EpisodeTable:
    """``episodes``: one row per tracked interaction."""

    def __init__(self, store: BrainStore) -> None:
        self._store = store

    def insert(
        self, episode: Episode, *, ts: float, item_key: int | None, context: Context
    ) -> EpisodeRow:
        """Commit one episode (synchronous=NORMAL: durable against a process crash)."""
        store = self._store
        with store.lock:
            try:
                cur = store.conn.execute(
                    "INSERT INTO episodes (ts, kind, item_key, session_id, time_bucket, "
                    "day_type, reward, success, critique, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        ts,
                        episode.kind,
                        item_key,
                        context.session_id,
                        context.time_bucket,
                        context.day_type,
                        episode.reward,
                        int(episode.success),
                        episode.critique,
                        json.dumps(episode.detail, separators=(",", ":")),
                    ),
                )
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"brain database {store.path}: {exc}") from exc
        return EpisodeRow(
            id=int(cur.lastrowid or 0),
            ts=ts,
            kind=episode.kind,
            item_key=item_key,
            session_id=context.session_id,
            time_bucket=context.time_bucket,
            day_type=context.day_type,
            reward=episode.reward,
            success=episode.success,
            critique=episode.critique,
            detail=episode.detail,
        )

    def after(self, episode_id: int) -> list[EpisodeRow]:
        """The episodes tracked after ``episode_id``, oldest first."""
        return self._select("WHERE id > ? ORDER BY id", (episode_id,))

    def recent(self, limit: int) -> list[EpisodeRow]:
        """The last ``limit`` episodes, newest first."""
        return self._select("ORDER BY id DESC LIMIT ?", (limit,))

    def _select(self, tail: str, args: tuple[object, ...]) -> list[EpisodeRow]:
        with self._store.lock:
            rows = self._store.conn.execute(
                f"SELECT {_EPISODE_COLUMNS} FROM episodes {tail}", args
            ).fetchall()
        return [_episode(r) for r in rows]

    def interacted_keys(self) -> set[int]:
        """Titles watched, skipped or rated at least once."""
        with self._store.lock:
            rows = self._store.conn.execute(
                "SELECT DISTINCT item_key FROM episodes WHERE item_key IS NOT NULL "
                "AND kind IN ('view', 'skip', 'rating')"
            ).fetchall()
        return {int(r[0]) for r in rows}

    def prune(self, conn: sqlite3.Connection, before_ts: float) -> int:
        return int(conn.execute("DELETE FROM episodes WHERE ts < ?", (before_ts,)).rowcount)


class LearnedTables:
    """``patterns``, ``skills`` and ``tiers``: derived state, flushed in batches."""

    def __init__(self, store: BrainStore) -> None:
        self._store = store

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
        with self._store.lock:
            rows = self._store.conn.execute(
                "SELECT task, cells, time_bucket, day_type, successes, support, version, "
                "updated_at, shared_rate, shared_support FROM patterns"
            ).fetchall()
        return [PatternStat((r[0], parse_cells(r[1]), r[2], r[3]), *r[4:]) for r in rows]

    def clear_patterns(self, conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM patterns")

    def save_skills(self, conn: sqlite3.Connection, stats: Mapping[SkillKey, SkillStat]) -> None:
        conn.executemany(
            "INSERT INTO skills (name, context, uses, successes, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name, context) DO UPDATE SET "
            "uses = excluded.uses, successes = excluded.successes, "
            "updated_at = excluded.updated_at",
            [(n, c, s.uses, s.successes, s.updated_at) for (n, c), s in stats.items()],
        )

    def load_skills(self) -> dict[SkillKey, SkillStat]:
        with self._store.lock:
            found = self._store.conn.execute(
                "SELECT name, context, uses, successes, updated_at FROM skills"
            ).fetchall()
        return {(r[0], r[1]): SkillStat(r[2], r[3], r[4]) for r in found}

    def save_tiers(self, conn: sqlite3.Connection, tiers: Iterable[Tier]) -> None:
        conn.executemany(
            "INSERT INTO tiers (name, vector, mass, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET vector = excluded.vector, mass = excluded.mass, "
            "updated_at = excluded.updated_at",
            [(t.name, t.vector.astype(np.float32).tobytes(), t.mass, t.updated_at) for t in tiers],
        )

    def load_tiers(self) -> list[StoredTier]:
        with self._store.lock:
            found = self._store.conn.execute(
                "SELECT name, vector, mass, updated_at FROM tiers"
            ).fetchall()
        return [StoredTier(r[0], np.frombuffer(r[1], dtype=np.float32), r[2], r[3]) for r in found]
