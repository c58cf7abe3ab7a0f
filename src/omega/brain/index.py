"""Approximate nearest-neighbour index over unit vectors: usearch HNSW, cosine, f16.

Keys are uint64 (the store maps item and pattern ids to them). usearch deletes are
tombstones, so the index counts them and rebuilds itself once they pass a fifth of the
live entries. One lock guards every call: searches take ~0.1 ms, so sharing is cheap and
concurrent insert + search stays safe.

A saved index opens as a memory-mapped view (a warm start maps the file instead of
reading it: ~0.02 s instead of ~0.2 s at 100K titles); usearch cannot write to a view,
so the first write copies it into memory. Batched searches are remembered until the
next write: the neighbours of a title stay the same while the catalog does, and a TV
asks for the same neighbourhoods again and again between events.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Collection, Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

# onnxruntime must be loaded before usearch: usearch's compiled module links libstdc++
# statically and exports its symbols, and importing onnxruntime after it segfaults in
# std::codecvt (usearch 2.26 + onnxruntime 1.31, Linux; tests/brain/test_index.py checks
# it). Loading onnxruntime first is harmless; without it there is nothing to clash with.
with contextlib.suppress(ImportError):
    from omega.brain._ort import onnxruntime

    onnxruntime()  # telemetry off: see omega.brain._ort
from usearch.index import Index

from omega.errors import CorruptStoreError, InputError, StoreError

__all__ = ["VectorIndex"]

_COMPACT_RATIO = 0.2  # rebuild once tombstones exceed this share of live entries
_COMPACT_MIN = 64  # ...and there are at least this many (small indexes don't care)
_LARGE = 50_000  # entries past which searches use a wider beam
_REMEMBERED = 256  # batched search results kept until the next write
# Vectors are added on one thread. usearch's threaded add leaves vectors unreachable (a
# search for the vector itself does not find it in its top 100): of 100 builds of 411
# clustered 64-d vectors, 79 lost at least one (153 in all); of 10 builds of 5,000, 9
# (68 in all); of 5 of 5,000 384-d ones, 3; and a batch of 5,904 added threaded to a
# graph of 4,096 built on one thread still lost vectors in 3 of 5 builds. One thread lost
# none and builds the same graph every time. It costs 0.07 -> 0.10 s at 2,000 rows and
# 18 -> 47 s for a 100K catalog.

Keys = npt.NDArray[np.uint64]
Floats = npt.NDArray[np.float32]


def _add(index: Index, keys: Keys, vectors: Floats) -> None:
    index.add(keys, vectors, threads=1)


class VectorIndex:
    """HNSW index of ``dim``-dimensional vectors under uint64 keys; cosine similarity."""

    def __init__(
        self,
        dim: int,
        *,
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 64,
    ) -> None:
        if dim < 1:
            raise InputError(f"index dimension must be positive, got {dim}")
        self.dim = dim
        self._params = (connectivity, expansion_add, expansion_search)
        self._index = self._new_index()
        self._view = False  # a read-only memory-mapped file (see load)
        self._tombstones = 0
        self._lock = threading.RLock()
        # While compact() rebuilds, writes are logged here to replay onto the new graph.
        self._replay: list[tuple[Keys, Floats | None]] | None = None
        # (query bytes, k) -> one row of search_batch's answer; cleared by every write.
        self._remembered: dict[tuple[bytes, int], Keys] = {}

    def _new_index(self) -> Index:
        connectivity, expansion_add, expansion_search = self._params
        return Index(
            ndim=self.dim,
            metric="cos",
            dtype="f16",
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=expansion_search,
        )

    # --- input checks -------------------------------------------------------------

    @staticmethod
    def _keys(keys: Iterable[int] | npt.ArrayLike) -> Keys:
        arr = keys if isinstance(keys, np.ndarray) else np.asarray(list(keys))  # type: ignore[arg-type]
        if arr.size == 0:
            return np.empty(0, dtype=np.uint64)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise InputError("index keys must be a flat sequence of integers")
        if np.issubdtype(arr.dtype, np.signedinteger) and int(arr.min()) < 0:
            raise InputError("index keys must be non-negative")
        return arr.astype(np.uint64, copy=False)

    def _matrix(self, vectors: npt.ArrayLike, rows: int) -> Floats:
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise InputError(f"expected vectors of dimension {self.dim}, got shape {arr.shape}")
        if arr.shape[0] != rows:
            raise InputError(f"got {rows} keys but {arr.shape[0]} vectors")
        if not np.isfinite(arr).all():
            raise InputError("vectors must be finite (no NaN or infinity)")
        if (np.abs(arr).max(axis=1) == 0).any():
            raise InputError("zero vectors have no direction and cannot be indexed")
        return np.ascontiguousarray(arr)

    def _query(self, vector: npt.ArrayLike) -> Floats:
        arr = np.asarray(vector, dtype=np.float32)
        if arr.shape != (self.dim,):
            raise InputError(f"expected a query of dimension {self.dim}, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise InputError("the query vector must be finite (no NaN or infinity)")
        return arr

    # --- writes -------------------------------------------------------------------

    def upsert(self, keys: Iterable[int] | npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Add vectors under keys, replacing any vector already stored under a key."""
        k = self._keys(keys)
        if k.size == 0:
            return
        if np.unique(k).size != k.size:
            raise InputError("duplicate keys in one upsert")
        v = self._matrix(vectors, k.size)
        with self._lock:
            self._writable()
            present = k[np.asarray(self._index.contains(k), dtype=bool)]
            if present.size:
                self._tombstones += int(self._index.remove(present))
            _add(self._index, k, v)
            if self._replay is not None:
                self._replay.append((k, v))
            self._tune_expansion()
        self._maybe_compact()

    def _tune_expansion(self) -> None:
        """Past ~50K entries, search a wider beam. Measured on 100K clustered vectors
        (graph built with expansion_add=128): recall@10 0.95 at a beam of 128, 0.99 at
        256; small catalogs keep the faster setting."""
        wanted = max(self._params[2], 256 if len(self._index) > _LARGE else 0)
        if self._index.expansion_search != wanted:
            # usearch has a setter, but mypy reads its stub's property as read-only.
            self._index.expansion_search = wanted  # type: ignore[misc]

    def remove(self, keys: Iterable[int] | npt.ArrayLike) -> int:
        """Remove keys (absent ones are ignored); returns how many were removed."""
        k = self._keys(keys)
        if k.size == 0:
            return 0
        with self._lock:
            present = k[np.asarray(self._index.contains(k), dtype=bool)]
            if present.size == 0:
                return 0
            self._writable()
            removed = int(self._index.remove(present))
            self._tombstones += removed
            if self._replay is not None:
                self._replay.append((present, None))
        self._maybe_compact()
        return removed

    def _writable(self) -> None:
        """Before a write (lock held): forget remembered searches, and copy a mapped
        view into memory (usearch refuses to add to a view; removing from one crashes)."""
        self._remembered.clear()
        if self._view:
            self._index = self._index.copy()
            self._view = False

    @property
    def is_view(self) -> bool:
        """Whether the index still reads a memory-mapped file (no write since load)."""
        return self._view

    def _maybe_compact(self) -> None:
        if self._tombstones >= _COMPACT_MIN and self._tombstones > _COMPACT_RATIO * len(self):
            self.compact()

    def compact(self) -> None:
        """Rebuild the graph without tombstones (done automatically past 20%).

        The rebuild (seconds at 100K entries) runs outside the lock, so searches go on
        against the old graph; writes made meanwhile are replayed onto the new one.
        """
        with self._lock:
            if self._replay is not None:
                return  # another thread is already rebuilding
            keys = self.keys()
            vectors = self._vectors(keys) if keys.size else None
            self._replay = []
        try:
            fresh = self._new_index()
            if vectors is not None:
                _add(fresh, keys, vectors)
            with self._lock:
                tombstones = 0
                for op_keys, op_vectors in self._replay:
                    present = op_keys[np.asarray(fresh.contains(op_keys), dtype=bool)]
                    if present.size:
                        tombstones += int(fresh.remove(present))
                    if op_vectors is not None:
                        _add(fresh, op_keys, op_vectors)
                self._index = fresh
                self._view = False
                self._remembered.clear()
                self._tombstones = tombstones
        finally:
            with self._lock:
                self._replay = None

    # --- reads --------------------------------------------------------------------

    def search(
        self, vector: npt.ArrayLike, k: int, *, exclude: Collection[int] | None = None
    ) -> tuple[Keys, Floats]:
        """The ``k`` nearest keys and their cosine similarities, best first.

        Keys in ``exclude`` are skipped; the search fetches more so that ``k`` results
        still come back when the index holds enough other entries.
        """
        q = self._query(vector)
        if k < 1:
            return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.float32)
        banned = np.fromiter(exclude, dtype=np.uint64) if exclude else None
        with self._lock:
            size = len(self._index)
            if size == 0:
                return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.float32)
            want = min(size, k + (banned.size if banned is not None else 0))
            while True:
                matches = self._index.search(q, want)
                keys = np.asarray(matches.keys, dtype=np.uint64)
                dist = np.asarray(matches.distances, dtype=np.float32)
                if banned is not None:
                    keep = ~np.isin(keys, banned)
                    keys, dist = keys[keep], dist[keep]
                if keys.size >= k or want >= size:
                    break
                want = min(size, want * 2)
        return keys[:k], (1.0 - dist[:k]).astype(np.float32)

    def search_batch(self, queries: npt.ArrayLike, k: int) -> Keys:
        """The ``k`` nearest keys of every query row, in one call: shape (m, ≤ k).

        Rows answered since the last write come from memory; the rest go to usearch
        together. A search is deterministic for one graph, so the answer is the same.
        """
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim or not np.isfinite(q).all():
            raise InputError(f"queries must be a finite (m, {self.dim}) matrix")
        with self._lock:
            size = len(self._index)
            if size == 0 or len(q) == 0 or k < 1:
                return np.empty((len(q), 0), dtype=np.uint64)
            width = min(k, size)
            out = np.empty((len(q), width), dtype=np.uint64)
            tags = [(row.tobytes(), width) for row in q]
            missing = []
            for i, tag in enumerate(tags):
                known = self._remembered.get(tag)
                if known is None:
                    missing.append(i)
                else:
                    out[i] = known
            if missing:
                # One thread: a handful of queries is cheaper than waking a pool for them.
                matches = self._index.search(q[missing], width, threads=1)
                out[missing] = np.asarray(matches.keys, dtype=np.uint64).reshape(len(missing), -1)
                if len(self._remembered) + len(missing) > _REMEMBERED:
                    self._remembered.clear()
                for i in missing:
                    self._remembered[tags[i]] = out[i].copy()
        return out

    def search_exact(self, vector: npt.ArrayLike, k: int) -> tuple[Keys, Floats]:
        """Brute-force top ``k`` (for measuring the index's recall)."""
        keys, sims = self.search_exact_batch(self._query(vector)[None, :], k)
        return keys[0], sims[0]

    def search_exact_batch(
        self, queries: npt.ArrayLike, k: int
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float32]]:
        """Brute-force top ``k`` for each row of ``queries``: (m, k') keys and similarities.

        Reads the stored vectors once, so measuring recall over many queries stays cheap.
        """
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise InputError(f"expected queries of shape (m, {self.dim}), got {q.shape}")
        with self._lock:
            keys = self.keys()
            matrix = self._vectors(keys) if keys.size else np.empty((0, self.dim), np.float32)
        width = max(0, min(k, keys.size))
        if width == 0:
            return np.empty((len(q), 0), np.uint64), np.empty((len(q), 0), np.float32)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        sims = q @ matrix.T
        top = np.argpartition(-sims, width - 1, axis=1)[:, :width]
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_sims, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        return keys[top], np.take_along_axis(top_sims, order, axis=1).astype(np.float32)

    def _vectors(self, keys: Keys) -> Floats:
        # usearch returns the stored f16 rows; keys are known to be present here.
        return np.asarray(self._index.get(keys), dtype=np.float32).reshape(-1, self.dim)

    def get(self, keys: Iterable[int] | npt.ArrayLike) -> Floats:
        """Stored vectors (as float32, rounded to f16) for present keys; unknown → InputError."""
        k = self._keys(keys)
        if k.size == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        with self._lock:
            found = np.asarray(self._index.contains(k), dtype=bool)
            if not found.all():
                missing = [int(x) for x in k[~found][:5]]
                raise InputError(f"keys not in the index: {missing}")
            return self._vectors(k)

    def keys(self) -> Keys:
        """Every live key, in no particular order."""
        with self._lock:
            return np.asarray(self._index.keys, dtype=np.uint64).reshape(-1)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, int | np.integer) or int(key) < 0:
            return False
        with self._lock:
            return bool(self._index.contains(np.uint64(key)))

    @property
    def tombstones(self) -> int:
        """Removed entries still occupying the graph."""
        return self._tombstones

    def memory_bytes(self) -> int:
        """usearch's estimate of the index's memory use."""
        return int(self._index.memory_usage)

    # --- persistence --------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index atomically: temp file, fsync, rename, fsync the directory."""
        target = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            with self._lock:
                self._index.save(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except (OSError, RuntimeError) as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StoreError(f"could not save the vector index to {target}: {exc}") from exc
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        dim: int,
        *,
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 64,
        view: bool = True,
    ) -> VectorIndex:
        """Open an index saved by :meth:`save`; a damaged file raises CorruptStoreError.

        With ``view`` (the default) the file is memory-mapped, not read: opening costs
        next to nothing and pages come in as searches touch them; the first write copies
        the index into memory. :meth:`save` replaces the file with a new one (rename), so
        a mapped file is never changed underneath a view."""
        source = Path(path)
        if not source.is_file():
            raise StoreError(f"no vector index file at {source}")
        try:
            meta = Index.metadata(str(source))
        except (ValueError, RuntimeError) as exc:
            raise CorruptStoreError(f"the vector index file {source} is damaged: {exc}") from exc
        if meta is None:
            raise CorruptStoreError(f"the vector index file {source} is not a usearch index")
        if int(meta["dimensions"]) != dim:
            raise InputError(
                f"the vector index {source} holds {meta['dimensions']}-dimensional vectors, "
                f"expected {dim}"
            )
        out = cls(
            dim,
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=expansion_search,
        )
        try:
            if view:
                out._index.view(str(source))
            else:
                out._index.load(str(source))
        except (ValueError, RuntimeError) as exc:
            raise CorruptStoreError(f"the vector index file {source} is damaged: {exc}") from exc
        out._view = view
        out._tombstones = int(meta.get("count_deleted", 0))
        out._tune_expansion()
        out._maybe_compact()
        return out
