"""The brain's catalog and content cells: titles in, vectors indexed, codebook adopted.

A mixin of :class:`omega.brain.Brain` (kept apart by concept: what the brain knows about
titles, not what it learns from viewing). A brain reading a shared catalog (a simulated
fleet) refuses to change it; changes go to the shared copy.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from omega.brain.catalog import Catalog, CatalogItem, SharedCatalog, item_text
from omega.brain.codebook import assign_cells, build_codebook, codebook_id
from omega.brain.config import BrainConfig
from omega.brain.index import VectorIndex
from omega.brain.knowledge import CellKnowledge
from omega.brain.patterns import PatternBank
from omega.brain.store import BrainStore, EpisodeRow
from omega.errors import ConfigError, CorruptStoreError, InputError
from omega.protocol import EMBEDDING_DIM
from omega.protocol.messages import ConsolidatedPattern, Trend

if TYPE_CHECKING:
    from omega.brain.embedder import Embedder

__all__ = ["DIM", "INDEX_FILE", "CatalogOps"]

DIM = EMBEDDING_DIM  # all-MiniLM-L6-v2, the one embedding size on the wire
INDEX_FILE = "index.usearch"
log = logging.getLogger(__name__)


class CatalogOps:
    """Catalog, index and codebook operations; the state lives on the brain."""

    directory: Path
    shared: SharedCatalog | None
    store: BrainStore
    config: BrainConfig
    _embedder: Embedder | None
    _lock: threading.RLock
    index: VectorIndex
    catalog: Catalog
    centroids: npt.NDArray[np.float32] | None
    codebook_id: str
    knowledge: CellKnowledge
    bank: PatternBank
    index_rebuilt: bool
    _catalog_dirty: bool
    _seen: npt.NDArray[np.bool_] | None
    _recent: deque[tuple[int, float, float]]
    _applied_episode: int

    # Provided by the brain.
    def _new_knowledge(self, k: int) -> CellKnowledge:
        raise NotImplementedError

    def _learn(self, episode: EpisodeRow) -> None:
        raise NotImplementedError

    def _refresh_collective(
        self, patterns: Sequence[ConsolidatedPattern], trends: Sequence[Trend]
    ) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    def _restore_own_catalog(self) -> None:
        codebook = self.store.load_codebook()
        if codebook is not None:
            self.codebook_id, self.centroids, _ = codebook
            self.knowledge = self._new_knowledge(len(self.centroids))
        rows, matrix = self.store.load_items()
        self.catalog = Catalog(rows, matrix, self.knowledge.k)
        index_path = self.directory / INDEX_FILE
        if index_path.exists():
            try:
                self.index = VectorIndex.load(index_path, DIM)
            except CorruptStoreError as exc:
                # brain.db holds every vector, so the index is rebuilt exactly, not degraded.
                log.warning("%s; rebuilding it from brain.db", exc)
        if len(self.index) != len(rows):
            self._rebuild_index()

    def _rebuild_index(self) -> None:
        self.index = VectorIndex(DIM)
        if len(self.catalog):
            self.index.upsert(self.catalog.keys.astype(np.uint64), self.catalog.matrix)
        self.index_rebuilt = True
        self._catalog_dirty = True

    # -- embedding ---------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from omega.brain.embedder import shared_embedder

            self._embedder = shared_embedder()
        return self._embedder

    # -- catalog -------------------------------------------------------------------------
    def upsert_items(self, items: Sequence[CatalogItem]) -> int:
        """Add or replace titles; those without an embedding are embedded locally."""
        self._own_catalog()
        if not items:
            return 0
        ids = [item.item_id for item in items]
        if any(not isinstance(i, str) or not i.strip() for i in ids):
            raise InputError("every catalog item needs a non-empty item_id")
        if len(set(ids)) != len(ids):
            raise InputError("duplicate item_id in one catalog batch")
        vectors = np.zeros((len(items), DIM), dtype=np.float32)
        missing = [i for i, item in enumerate(items) if item.embedding is None]
        for i, item in enumerate(items):
            if item.embedding is not None:
                vec = np.asarray(item.embedding, dtype=np.float32).reshape(-1)
                if vec.shape != (DIM,) or not np.all(np.isfinite(vec)):
                    raise InputError(
                        f"item {item.item_id!r}: embedding must be {DIM} finite floats"
                    )
                norm = float(np.linalg.norm(vec))
                if norm <= 0:
                    raise InputError(f"item {item.item_id!r}: embedding is all zeros")
                vectors[i] = vec / norm
        if missing:
            vectors[missing] = self.embedder.embed([item_text(items[i]) for i in missing])
        with self._lock:
            cells = (
                assign_cells(vectors, self.centroids)
                if self.centroids is not None
                else np.full(len(items), -1, dtype=np.int32)
            )
            f16 = vectors.astype(np.float16)
            with self.store.transaction() as conn:
                keys = self.store.upsert_items(
                    conn,
                    [
                        (
                            item.item_id,
                            item.title,
                            "|".join(item.genres),
                            item.year,
                            item.runtime_min,
                            "|".join(item.tags),
                            item.description,
                            f16[i].tobytes(),
                            int(cells[i]),
                        )
                        for i, item in enumerate(items)
                    ],
                )
            self.index.upsert(np.array(keys, dtype=np.uint64), f16.astype(np.float32))
            self._reload_catalog()
            if self.centroids is None and len(self.catalog) >= 2:
                self._build_local_codebook()
            self._catalog_dirty = True
            self._save_index()
        return len(items)

    def remove_items(self, item_ids: Iterable[str]) -> int:
        self._own_catalog()
        with self._lock:
            with self.store.transaction() as conn:
                keys = self.store.remove_items(conn, item_ids)
            self.index.remove(np.array(keys, dtype=np.uint64))
            self._reload_catalog()
            self._catalog_dirty = True
            self._save_index()
        return len(keys)

    def _own_catalog(self) -> None:
        if self.shared is not None:
            raise ConfigError("this brain reads a shared catalog; change the shared copy instead")

    def _reload_catalog(self) -> None:
        rows, matrix = self.store.load_items()
        self.catalog = Catalog(rows, matrix, self.knowledge.k)
        self._seen = None

    def _build_local_codebook(self) -> None:
        k = min(self.config.codebook_cells, len(self.catalog))
        self.set_codebook(build_codebook(self.catalog.matrix, k, seed=0), origin="local")

    def set_codebook(
        self, centroids: npt.NDArray[np.float32], *, origin: str = "constellation"
    ) -> str:
        """Adopt content cells (the constellation's, normally). Patterns are relearned in the
        new cells from the stored episodes."""
        self._own_catalog()
        centroids = np.asarray(centroids, dtype=np.float32)
        if centroids.ndim != 2 or centroids.shape[1] != DIM or not np.all(np.isfinite(centroids)):
            raise InputError(f"a codebook must be a finite (k, {DIM}) matrix")
        with self._lock:
            new_id = codebook_id(centroids)
            if new_id == self.codebook_id:
                return new_id
            cells = (
                assign_cells(self.catalog.matrix, centroids).tolist() if len(self.catalog) else []
            )
            with self.store.transaction(durable=True) as conn:
                self.store.save_codebook(conn, new_id, centroids, origin)
                self.store.set_cells(conn, self.catalog.keys.tolist(), cells)
                self.store.clear_patterns(conn)
                conn.execute("DELETE FROM outbox")
                conn.execute("DELETE FROM inflight")
                self.store.set_meta(conn, "applied_episode", "0")
            self.centroids, self.codebook_id = centroids, new_id
            self.knowledge = self._new_knowledge(len(centroids))
            self._reload_catalog()
            self.bank = PatternBank(
                min_quality=self.config.min_quality,
                min_support=self.config.min_support,
                max_patterns=self.config.max_patterns,
            )
            self._recent.clear()
            for episode in self.store.episodes_after(0):
                self._learn(episode)
                self._applied_episode = episode.id
            self._refresh_collective(*self.store.load_collective())
            self.flush()
        return new_id

    def _save_index(self) -> None:
        if self._catalog_dirty and self.shared is None:
            self.index.save(self.directory / INDEX_FILE)
            self._catalog_dirty = False

    def item_key(self, item_id: str) -> int:
        key = self.catalog.key_of_id.get(item_id)
        if key is None:
            raise InputError(f"unknown item {item_id!r}: add it to the catalog first")
        return key
