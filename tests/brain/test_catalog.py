"""The catalog snapshot: the same whether built from rows or from columns."""

from __future__ import annotations

import numpy as np

from omega.brain.catalog import Catalog, CatalogColumns, ItemRow


def _rows() -> list[ItemRow]:
    rng = np.random.default_rng(0)
    return [
        ItemRow(
            key=int(key),
            item_id=f"t{key}",
            title=f"Title {key}",
            genres=("Drama",) if key % 3 else ("Comedy", "Crime"),
            year=None if key % 7 == 0 else 1950 + int(key) % 70,
            runtime_min=None if key % 5 == 0 else 80 + int(key) % 60,
            cell=int(rng.integers(-1, 6)),
        )
        for key in (3, 4, 9, 10, 11, 20, 21, 22, 40, 41, 57, 60)
    ]


def test_columns_and_rows_give_the_same_catalog() -> None:
    rows = _rows()
    matrix = np.eye(len(rows), 384, dtype=np.float32)
    a = Catalog(rows, matrix, 6)
    b = Catalog(CatalogColumns.of(rows), matrix, 6)
    for name in ("keys", "cells", "runtime", "row_lookup"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.years, b.years)  # NaN where unknown, in both
    assert a.ids == b.ids and a.row_of_key == b.row_of_key and a.key_of_id == b.key_of_id
    assert len(a) == len(b) == len(rows) == len(b.rows)
    assert list(b.rows) == rows and b.rows[-1] == rows[-1] and b.rows[2:4] == rows[2:4]
    assert list(a.cell_rows) == list(b.cell_rows)
    for cell, members in a.cell_rows.items():
        np.testing.assert_array_equal(members, b.cell_rows[cell])


def test_cells_group_rows_in_order_of_first_appearance() -> None:
    rows = _rows()
    catalog = Catalog(rows, np.eye(len(rows), 384, dtype=np.float32), 6)
    expected: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        expected.setdefault(row.cell, []).append(i)
    assert list(catalog.cell_rows) == list(expected)
    assert {c: m.tolist() for c, m in catalog.cell_rows.items()} == expected
    runtimes = [-1 if r.runtime_min is None else r.runtime_min for r in rows]
    assert catalog.runtime.tolist() == runtimes


def test_an_empty_catalog() -> None:
    empty = Catalog(CatalogColumns.of([]), np.zeros((0, 384), np.float32), 4)
    assert len(empty) == 0 and not empty.cell_rows and empty.matrix.shape == (0, 384)
    assert empty.rows_for_keys([1, 2]).size == 0
