"""What a brain knows about titles: the catalog, its vector index and the codebook.

:class:`CatalogState` is the brain's part for content, not for viewing: it imports
titles (embedding those without a vector), keeps ``index.usearch`` in step with
``brain.db``, and holds the codebook whose cells patterns speak in. A brain reading a
:class:`SharedCatalog` (a simulated fleet) refuses to change it; changes go to the shared
copy. The caller (the brain) holds its lock around every change.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from omega.brain._store_catalog import CatalogTables, StoredCodebook
from omega.brain._vector_file import map_vectors, remove_leftovers, save_vectors
from omega.brain.catalog import Catalog, CatalogItem, SharedCatalog, item_text
from omega.brain.codebook import assign_cells, build_codebook, codebook_id
from omega.brain.index import VectorIndex
from omega.errors import ConfigError, CorruptStoreError, InputError
from omega.protocol import EMBEDDING_DIM

if TYPE_CHECKING:
    from omega.brain.embedder import Embedder

__all__ = ["DIM", "INDEX_FILE", "CatalogState", "Codebook"]

DIM = EMBEDDING_DIM  # all-MiniLM-L6-v2, the one embedding size on the wire
INDEX_FILE = "index.usearch"
log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class IndexChange:
    """Titles written to brain.db, for the index once the write commits: their keys and
    vectors (None: removed)."""

    keys: npt.NDArray[np.uint64]
    vectors: F32 | None


@dataclass(frozen=True, slots=True)
class Codebook:
    """Content cells: ``centroids`` (k, DIM) named by ``codebook_id`` (a hash of them)."""

    codebook_id: str
    centroids: F32

    @property
    def k(self) -> int:
        return len(self.centroids)


def checked_centroids(centroids: npt.ArrayLike) -> F32:
    matrix = np.asarray(centroids, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != DIM or not np.all(np.isfinite(matrix)):
        raise InputError(f"a codebook must be a finite (k, {DIM}) matrix")
    return matrix


def _unit_vectors(items: Sequence[CatalogItem]) -> tuple[F32, list[int]]:
    """The given embeddings as unit rows (checked), and which items have none."""
    ids = [item.item_id for item in items]
    if any(not isinstance(i, str) or not i.strip() for i in ids):
        raise InputError("every catalog item needs a non-empty item_id")
    if len(set(ids)) != len(ids):
        raise InputError("duplicate item_id in one catalog batch")
    vectors = np.zeros((len(items), DIM), dtype=np.float32)
    missing = []
    for i, item in enumerate(items):
        if item.embedding is None:
            missing.append(i)
            continue
        vec = np.asarray(item.embedding, dtype=np.float32).reshape(-1)
        if vec.shape != (DIM,) or not np.all(np.isfinite(vec)):
            raise InputError(f"item {item.item_id!r}: embedding must be {DIM} finite floats")
        norm = float(np.linalg.norm(vec))
        if norm <= 0:
            raise InputError(f"item {item.item_id!r}: embedding is all zeros")
        vectors[i] = vec / norm
    return vectors, missing


class CatalogState:
    """The catalog snapshot, the index and the codebook of one brain."""

    def __init__(
        self,
        directory: Path,
        tables: CatalogTables,
        *,
        embedder: Embedder | None,
        shared: SharedCatalog | None,
    ) -> None:
        self.directory = directory
        self.shared = shared
        self._tables = tables
        self._embedder = embedder
        self.catalog = Catalog([], np.zeros((0, DIM), np.float32), 0)
        self.index = VectorIndex(DIM)
        self.codebook: Codebook | None = None
        self._dirty = False  # the index changed since it was saved
        self._token = ""  # names the set of titles the catalog snapshot holds
        self._unsaved_vectors = False  # the snapshot's vectors have no saved copy

    # -- opening -----------------------------------------------------------------------
    def restore(self) -> None:
        """Read the codebook, the titles and the index (a shared catalog: adopt it)."""
        if self.shared is not None:
            self.codebook = Codebook(self.shared.codebook_id, self.shared.centroids)
            self.catalog, self.index = self.shared.catalog, self.shared.index
            return
        stored = self._tables.load_codebook()
        if stored is not None:
            self.codebook = Codebook(stored.codebook_id, stored.centroids)
        remove_leftovers(self.directory)
        self._reload()
        index_path = self.directory / INDEX_FILE
        if index_path.exists():
            try:
                self.index = VectorIndex.load(index_path, DIM)
            except CorruptStoreError as exc:
                # brain.db holds every vector, so the index is rebuilt exactly, not degraded.
                log.warning("%s; rebuilding it from brain.db", exc)
        if len(self.index) != len(self.catalog):
            self.index = VectorIndex(DIM)
            if len(self.catalog):
                self.index.upsert(self.catalog.keys.astype(np.uint64), self.catalog.matrix)
            self._dirty = True
        self.save_index()  # a rebuilt index or a missing copy of the vectors: save now

    # -- reading -----------------------------------------------------------------------
    @property
    def k(self) -> int:
        """Cells in the codebook (0 before there is one)."""
        return 0 if self.codebook is None else self.codebook.k

    @property
    def codebook_id(self) -> str:
        return "" if self.codebook is None else self.codebook.codebook_id

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from omega.brain.embedder import shared_embedder

            self._embedder = shared_embedder()
        return self._embedder

    def key(self, item_id: str) -> int:
        """The key of a catalog title; an unknown title is an input error."""
        key = self.catalog.key_of_id.get(item_id)
        if key is None:
            raise InputError(f"unknown item {item_id!r}: add it to the catalog first")
        return key

    def runtime_s(self, key: int) -> float | None:
        row = self.catalog.rows[self.catalog.row_of_key[key]]
        return row.runtime_min * 60.0 if row.runtime_min else None

    # -- changing ----------------------------------------------------------------------
    def embed(self, items: Sequence[CatalogItem]) -> F32:
        """Unit vectors for ``items``: theirs where given (checked), else the embedder's.
        Runs outside the brain's lock (embedding is the slow part)."""
        self.require_own()
        vectors, missing = _unit_vectors(items)
        if missing:
            vectors[missing] = self.embedder.embed([item_text(items[i]) for i in missing])
        return vectors

    def upsert(
        self, conn: sqlite3.Connection, items: Sequence[CatalogItem], vectors: F32
    ) -> IndexChange:
        """Write titles (with their cells under the current codebook) in the caller's
        transaction; :meth:`apply` the returned change to the index once it commits."""
        cells = (
            assign_cells(vectors, self.codebook.centroids)
            if self.codebook is not None
            else np.full(len(items), -1, dtype=np.int32)
        )
        f16 = vectors.astype(np.float16)
        keys = self._tables.upsert(conn, items, f16, cells)
        return IndexChange(np.array(keys, dtype=np.uint64), f16.astype(np.float32))

    def remove(self, conn: sqlite3.Connection, item_ids: Iterable[str]) -> IndexChange:
        """Delete titles in the caller's transaction; :meth:`apply` the change after."""
        self.require_own()
        keys = self._tables.remove(conn, item_ids)
        return IndexChange(np.array(keys, dtype=np.uint64), None)

    def apply(self, change: IndexChange) -> None:
        """After the change committed: update the index, the snapshot and the saved files
        (the index is never ahead of brain.db)."""
        if len(change.keys) == 0:
            return
        if change.vectors is None:
            self.index.remove(change.keys)
        else:
            self.index.upsert(change.keys, change.vectors)
        self._dirty = True
        self._reload()
        self.save_index()

    def local_codebook(self, cells: int) -> F32 | None:
        """Centroids the brain can use until the constellation sends its own (none while
        there is a codebook or fewer than two titles)."""
        if self.codebook is not None or len(self.catalog) < 2:
            return None
        return build_codebook(self.catalog.matrix, min(cells, len(self.catalog)), seed=0)

    def write_codebook(self, conn: sqlite3.Connection, centroids: F32, origin: str) -> Codebook:
        """Store a new codebook and every title's cell under it (in the caller's
        transaction); :meth:`adopt` it once that commits."""
        self.require_own()
        new = Codebook(codebook_id(centroids), centroids)
        cells = assign_cells(self.catalog.matrix, centroids).tolist() if len(self.catalog) else []
        self._tables.save_codebook(conn, StoredCodebook(new.codebook_id, centroids, origin))
        self._tables.set_cells(conn, self.catalog.keys.tolist(), cells)
        return new

    def adopt(self, codebook: Codebook) -> None:
        self.codebook = codebook
        self._reload()

    def save_index(self) -> None:
        """Save the index and a copy of the vectors if either changed since saved."""
        if self.shared is not None:
            return
        if self._dirty:
            self.index.save(self.directory / INDEX_FILE)
            self._dirty = False
        if self._unsaved_vectors:
            save_vectors(self.directory, self._token, self.catalog.matrix)
            self._unsaved_vectors = False

    def _reload(self) -> None:
        """Read the titles and their vectors in one read transaction: the saved copy of the
        vectors when it was made from these titles, else brain.db's."""
        with self._tables.reading():
            token = self._tables.token()
            columns = self._tables.load()
            matrix = map_vectors(self.directory, token, len(columns))
            unsaved = matrix is None and bool(token) and len(columns) > 0
            if matrix is None:
                matrix = self._tables.vectors()
        self.catalog = Catalog(columns, matrix, self.k)
        self._token, self._unsaved_vectors = token, unsaved

    def require_own(self) -> None:
        """Refuse to change a shared catalog (a configuration error, not bad input)."""
        if self.shared is not None:
            raise ConfigError("this brain reads a shared catalog; change the shared copy instead")
