"""The collective tier's popularity list: released item scores, kept by item id.

The constellation estimates how often each catalog title is started from ε-LDP reports
(``omega.protocol.frequency``) and releases the top titles as scores in [0, 1]. Scores
are stored by item id (catalog rows move when the catalog changes) and read as one
float32 array over the catalog's rows for scoring.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from omega.brain.catalog import Catalog
from omega.protocol.messages import ItemScore

__all__ = ["clear_popular", "load_popular", "save_popular"]

F32 = npt.NDArray[np.float32]


def save_popular(conn: sqlite3.Connection, entries: Iterable[ItemScore]) -> None:
    """Replace the list with a released one (none: keep the current list).

    The constellation sends its whole current list (best first, cut to the pull's byte
    budget) whenever it changed, so replacing never keeps a stale title."""
    rows = [(e.item_id, float(e.score)) for e in entries]
    if not rows:
        return
    conn.execute("DELETE FROM popular")
    conn.executemany(
        "INSERT INTO popular (item_id, score) VALUES (?, ?) "
        "ON CONFLICT (item_id) DO UPDATE SET score = excluded.score",
        [r for r in rows if r[1] > 0],
    )


def clear_popular(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM popular")


def load_popular(conn: sqlite3.Connection, catalog: Catalog) -> F32:
    """The stored scores as an array over ``catalog``'s rows (0 for titles not listed)."""
    scores = np.zeros(len(catalog), dtype=np.float32)
    for item_id, score in conn.execute("SELECT item_id, score FROM popular"):
        key = catalog.key_of_id.get(item_id)
        row = None if key is None else catalog.row_of_key.get(key)
        if row is not None:
            scores[row] = score
    return scores
