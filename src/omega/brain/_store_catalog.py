"""The catalog's tables in ``brain.db``: titles with their f16 vectors and cells, and the
codebook (content cells) the brain uses."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from omega.brain.catalog import CatalogColumns, CatalogItem

if TYPE_CHECKING:
    from omega.brain.store import BrainStore

__all__ = ["CatalogTables", "StoredCodebook"]


_UPSERT = (
    "INSERT INTO items (item_id, title, genres, year, runtime_min, tags, description, "
    "embedding, cell) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (item_id) DO UPDATE SET title = excluded.title, "
    "genres = excluded.genres, year = excluded.year, runtime_min = excluded.runtime_min, "
    "tags = excluded.tags, description = excluded.description, "
    "embedding = excluded.embedding, cell = excluded.cell RETURNING key"
)


@dataclass(frozen=True, slots=True)
class StoredCodebook:
    codebook_id: str
    centroids: npt.NDArray[np.float32]
    origin: str  # "constellation" or "local"


class CatalogTables:
    """``items`` and ``codebook``; reads take the store's lock, writes a transaction's
    connection."""

    def __init__(self, store: BrainStore) -> None:
        self._store = store

    def upsert(
        self,
        conn: sqlite3.Connection,
        items: Sequence[CatalogItem],
        vectors: npt.NDArray[np.float16],
        cells: npt.NDArray[np.int32],
    ) -> list[int]:
        """Add or replace titles (one f16 vector and cell each); returns their keys."""
        keys = []
        for item, vector, cell in zip(items, vectors, cells.tolist(), strict=True):
            row = (
                item.item_id,
                item.title,
                "|".join(item.genres),
                item.year,
                item.runtime_min,
                "|".join(item.tags),
                item.description,
                vector.tobytes(),
                int(cell),
            )
            keys.append(int(conn.execute(_UPSERT, row).fetchone()[0]))
        if keys:
            self._new_token(conn)
        return keys

    def remove(self, conn: sqlite3.Connection, item_ids: Iterable[str]) -> list[int]:
        keys = []
        for item_id in item_ids:
            row = conn.execute(
                "DELETE FROM items WHERE item_id = ? RETURNING key", (item_id,)
            ).fetchone()
            if row is not None:
                keys.append(int(row[0]))
        if keys:
            self._new_token(conn)
        return keys

    def set_cells(
        self, conn: sqlite3.Connection, keys: Sequence[int], cells: Sequence[int]
    ) -> None:
        conn.executemany(
            "UPDATE items SET cell = ? WHERE key = ?",
            [(int(c), int(k)) for c, k in zip(cells, keys, strict=True)],
        )

    @staticmethod
    def _new_token(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO catalog_token (id, token) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET token = excluded.token",
            (uuid.uuid4().hex,),
        )

    def reading(self) -> AbstractContextManager[sqlite3.Connection]:
        """One read transaction for several reads (see ``BrainStore.reading``)."""
        return self._store.reading()

    def token(self) -> str:
        """Names the current set of titles: replaced by every change to it ("" before the
        first title)."""
        with self._store.lock:
            row = self._store.conn.execute("SELECT token FROM catalog_token").fetchone()
        return "" if row is None else str(row[0])

    def load(self) -> CatalogColumns:
        """Every title in key order, column by column (not their vectors: see
        :meth:`vectors`); tags and descriptions stay in the database."""
        with self._store.lock:
            rows = self._store.conn.execute(
                "SELECT key, item_id, title, genres, year, runtime_min, cell FROM items "
                "ORDER BY key"
            ).fetchall()
        if not rows:
            return CatalogColumns(
                keys=[], item_ids=[], titles=[], genres=[], years=[], runtimes=[], cells=[]
            )
        keys, item_ids, titles, genres, years, runtimes, cells = zip(*rows, strict=True)
        split: dict[str, tuple[str, ...]] = {}  # a catalog has few distinct genre lists
        for text in set(genres):
            split[text] = tuple(g for g in text.split("|") if g)
        return CatalogColumns(
            keys=keys,
            item_ids=item_ids,
            titles=titles,
            genres=[split[g] for g in genres],
            years=years,
            runtimes=runtimes,
            cells=cells,
        )

    def vectors(self) -> npt.NDArray[np.float32]:
        """Every title's vector in key order, as one float32 matrix."""
        with self._store.lock:
            blobs = self._store.conn.execute("SELECT embedding FROM items ORDER BY key").fetchall()
        if not blobs:
            return np.zeros((0, 0), dtype=np.float32)
        matrix = np.frombuffer(b"".join(b[0] for b in blobs), dtype=np.float16)
        return matrix.reshape(len(blobs), -1).astype(np.float32)

    def save_codebook(self, conn: sqlite3.Connection, codebook: StoredCodebook) -> None:
        centroids = codebook.centroids
        conn.execute(
            "INSERT INTO codebook (id, codebook_id, dim, k, centroids, origin) "
            "VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "codebook_id = excluded.codebook_id, dim = excluded.dim, k = excluded.k, "
            "centroids = excluded.centroids, origin = excluded.origin",
            (
                codebook.codebook_id,
                centroids.shape[1],
                centroids.shape[0],
                centroids.astype(np.float16).tobytes(),
                codebook.origin,
            ),
        )

    def load_codebook(self) -> StoredCodebook | None:
        with self._store.lock:
            row = self._store.conn.execute(
                "SELECT codebook_id, dim, k, centroids, origin FROM codebook WHERE id = 1"
            ).fetchone()
        if row is None:
            return None
        matrix = np.frombuffer(row[3], dtype=np.float16).reshape(row[2], row[1])
        return StoredCodebook(str(row[0]), matrix.astype(np.float32), str(row[4]))
