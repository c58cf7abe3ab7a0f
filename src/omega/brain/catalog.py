"""The catalog as the recommender sees it: rows of metadata, vectors, cells and an index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from omega.protocol import EMBEDDING_DIM

__all__ = ["Catalog", "CatalogColumns", "CatalogItem", "ItemRow", "SharedCatalog", "item_text"]


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
    """A title as the recommender reads it (``key``: the index's key for it). Tags and
    descriptions stay in the database: only embedding reads them, when a title is added."""

    key: int
    item_id: str
    title: str
    genres: tuple[str, ...]
    year: int | None
    runtime_min: int | None
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


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogColumns:
    """The catalog's titles column by column, in row order, as one query reads them.

    What a warm start should hand :class:`Catalog`: at 100K titles, making an
    :class:`ItemRow` per title costs about as much as the query itself. Tags and
    descriptions are left out: only embedding reads them, when a title is added.
    """

    keys: Sequence[int]
    item_ids: Sequence[str]
    titles: Sequence[str]
    genres: Sequence[tuple[str, ...]]
    years: Sequence[int | None]
    runtimes: Sequence[int | None]
    cells: Sequence[int]

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def of(cls, rows: Sequence[ItemRow]) -> CatalogColumns:
        return cls(
            keys=[r.key for r in rows],
            item_ids=[r.item_id for r in rows],
            titles=[r.title for r in rows],
            genres=[r.genres for r in rows],
            years=[r.year for r in rows],
            runtimes=[r.runtime_min for r in rows],
            cells=[r.cell for r in rows],
        )


class _Rows(Sequence[ItemRow]):
    """``Catalog.rows`` over columns: an :class:`ItemRow` made when one is read."""

    def __init__(self, columns: CatalogColumns) -> None:
        self._c = columns

    def __len__(self) -> int:
        return len(self._c.keys)

    @overload
    def __getitem__(self, i: int) -> ItemRow: ...
    @overload
    def __getitem__(self, i: slice) -> list[ItemRow]: ...
    def __getitem__(self, i: int | slice) -> ItemRow | list[ItemRow]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        c = self._c
        return ItemRow(
            key=c.keys[i],
            item_id=c.item_ids[i],
            title=c.titles[i],
            genres=c.genres[i],
            year=c.years[i],
            runtime_min=c.runtimes[i],
            cell=c.cells[i],
        )


class Catalog:
    """Immutable snapshot of the catalog; the brain builds a new one when items change.

    Built from :class:`ItemRow` objects or, cheaper at scale, from :class:`CatalogColumns`.
    """

    def __init__(
        self,
        rows: Sequence[ItemRow] | CatalogColumns,
        matrix: npt.NDArray[np.float32],
        k: int,
    ) -> None:
        # Built column by column, no per-title Python loop: at 100K titles this runs on
        # every warm start and catalog change.
        if isinstance(rows, CatalogColumns):
            columns = rows
            self.rows: Sequence[ItemRow] = _Rows(columns)
        else:
            self.rows = list(rows)
            columns = CatalogColumns.of(self.rows)
        n = len(columns.keys)
        self.matrix = matrix if n else np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        self.keys = np.array(columns.keys, dtype=np.int64)
        self.ids = list(columns.item_ids)
        #: Titles and genres per row: what a request reads for a few rows, without making
        #: an :class:`ItemRow` for each.
        self.titles: Sequence[str] = columns.titles
        self.genres: Sequence[tuple[str, ...]] = columns.genres
        self.row_of_key = dict(zip(columns.keys, range(n), strict=True))
        self.key_of_id = dict(zip(self.ids, columns.keys, strict=True))
        self.cells = np.array(columns.cells, dtype=np.int64)
        self.runtime = np.array([-1 if r is None else r for r in columns.runtimes], dtype=np.int64)
        #: Release year per row, NaN where unknown.
        self.years = np.array([y or np.nan for y in columns.years], dtype=np.float32)
        self.k = k
        # key -> row as an array: converting index results is one fancy-index, not a loop
        top = int(self.keys.max()) + 1 if n else 1
        self.row_lookup = np.full(top, -1, dtype=np.int64)
        self.row_lookup[self.keys] = np.arange(n, dtype=np.int64)
        #: Rows of each cell, in row order; cells in the order they first appear.
        self.cell_rows: dict[int, npt.NDArray[np.int64]] = {}
        if n:
            order = np.argsort(self.cells, kind="stable")
            cells, starts = np.unique(self.cells[order], return_index=True)
            groups = np.split(order, starts[1:])
            for i in np.argsort(order[starts], kind="stable").tolist():
                self.cell_rows[int(cells[i])] = groups[i]

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
