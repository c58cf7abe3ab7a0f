"""The catalog as the recommender sees it: rows of metadata, vectors, cells and an index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from omega.protocol import EMBEDDING_DIM

__all__ = ["Catalog", "CatalogItem", "ItemRow", "SharedCatalog", "item_text"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogItem:
    """One title a TV can offer. ``embedding`` (384 floats) skips local embedding."""

    item_id: str
    title: str
    genres: tuple[str, ...] = ()
    year: int | None = None
    runtime_min: int | None = None
    tags: tuple[str, ...] = ()
    description: str = ""
    embedding: npt.NDArray[np.float32] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class ItemRow:
    """A title as the brain's database holds it (``key``: the index's key for it)."""

    key: int
    item_id: str
    title: str
    genres: tuple[str, ...]
    year: int | None
    runtime_min: int | None
    tags: str
    description: str
    cell: int


def item_text(item: CatalogItem) -> str:
    """What the embedder reads for a title: the title, year, genres, then tags/description."""
    has_year = item.year is None or item.title.rstrip().endswith(f"({item.year})")
    parts = [item.title if has_year else f"{item.title} ({item.year})"]
    if item.genres:
        parts.append(", ".join(item.genres))
    if item.tags:
        parts.append(", ".join(item.tags))
    if item.description:
        parts.append(item.description)
    return ". ".join(parts)


class Catalog:
    """Immutable snapshot of the catalog; the brain builds a new one when items change."""

    def __init__(self, rows: Sequence[ItemRow], matrix: npt.NDArray[np.float32], k: int) -> None:
        self.rows = list(rows)
        self.matrix = matrix if len(rows) else np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        self.keys = np.array([r.key for r in rows], dtype=np.int64)
        self.ids = [r.item_id for r in rows]
        self.row_of_key = {r.key: i for i, r in enumerate(rows)}
        self.key_of_id = {r.item_id: r.key for r in rows}
        self.cells = np.array([r.cell for r in rows], dtype=np.int64)
        self.runtime = np.array(
            [r.runtime_min if r.runtime_min is not None else -1 for r in rows], dtype=np.int64
        )
        #: Release year per row, NaN where unknown.
        self.years = np.array([float(r.year) if r.year else np.nan for r in rows], dtype=np.float32)
        self.k = k
        # key -> row as an array: converting index results is one fancy-index, not a loop
        top = int(self.keys.max()) + 1 if len(rows) else 1
        self.row_lookup = np.full(top, -1, dtype=np.int64)
        self.row_lookup[self.keys] = np.arange(len(rows), dtype=np.int64)
        members: dict[int, list[int]] = {}
        for i, cell in enumerate(self.cells.tolist()):
            members.setdefault(int(cell), []).append(i)
        self.cell_rows = {c: np.array(v, dtype=np.int64) for c, v in members.items()}

    def __len__(self) -> int:
        return len(self.rows)

    def rows_for_keys(self, keys: npt.NDArray[Any] | Sequence[int]) -> npt.NDArray[np.int64]:
        arr = np.asarray(keys, dtype=np.int64).reshape(-1)
        arr = arr[(arr >= 0) & (arr < len(self.row_lookup))]
        found = self.row_lookup[arr]
        out: npt.NDArray[np.int64] = found[found >= 0]
        return out


class SharedCatalog:
    """A read-only catalog (vectors, cells, index, codebook) shared by many brains in one
    process — what a fleet simulation uses instead of giving every TV its own copy.

    Brains opened with it keep only their own state in their database; the catalog is
    the constellation's, as shipped to every TV.
    """

    def __init__(
        self,
        items: Sequence[CatalogItem],
        matrix: npt.NDArray[np.float32],
        centroids: npt.NDArray[np.float32],
    ) -> None:
        from omega.brain.codebook import assign_cells, codebook_id
        from omega.brain.index import VectorIndex

        if len(items) != len(matrix):
            raise ValueError("one vector per item is needed")
        cells = assign_cells(matrix, centroids)
        rows = [
            ItemRow(
                key=n + 1,
                item_id=item.item_id,
                title=item.title,
                genres=tuple(item.genres),
                year=item.year,
                runtime_min=item.runtime_min,
                tags="|".join(item.tags),
                description=item.description,
                cell=int(cells[n]),
            )
            for n, item in enumerate(items)
        ]
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.codebook_id = codebook_id(self.centroids)
        self.catalog = Catalog(rows, self.matrix, len(self.centroids))
        self.index = VectorIndex(self.matrix.shape[1])
        self.index.upsert(self.catalog.keys.astype(np.uint64), self.matrix)
