"""MovieLens viewing logs as arrays: ``load_dataset(path)`` auto-detects the layout.

- **ml-latest** (``ratings.csv``, ``movies.csv``, optional ``tags.csv``), UTF-8 CSV.
- **ml-100k** (``u.data`` tab separated ``user item rating timestamp``; ``u.item`` pipe
  separated latin-1 with one 0/1 flag per genre of ``u.genre``).

One viewer = one MovieLens user. Items are the whole catalog (``movies.csv`` / ``u.item``),
in file order, including movies nobody rated; a rating for a movie outside the catalog is
an error. Titles are kept as written; ``year`` is parsed from the title (ml-100k falls back
to the release date). "(no genres listed)" and ml-100k's "unknown" become no genres.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from omega.errors import InputError
from omega.sim._movielens import RawData, read_ml100k, read_ml_latest

__all__ = ["Dataset", "DatasetFormat", "Item", "load_dataset"]

DatasetFormat = Literal["ml-latest", "ml-100k"]


@dataclass(frozen=True, slots=True)
class Item:
    """One catalog entry. ``item_id`` is the MovieLens movie id as written in the files."""

    item_id: str
    title: str
    genres: tuple[str, ...]
    year: int | None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Dataset:
    """A viewing log: the catalog plus one row per rating, as parallel numpy arrays.

    ``users[k]`` / ``items_idx[k]`` index ``user_ids`` / ``items``; ``item_keys[i]`` is item
    ``i``'s id as a number (the evaluation protocol's tie-break). Users are indexed in
    ascending numeric id order; rating rows keep file order.
    """

    path: Path
    format: DatasetFormat
    items: tuple[Item, ...]
    user_ids: tuple[str, ...]
    users: npt.NDArray[np.int32]
    items_idx: npt.NDArray[np.int32]
    ratings: npt.NDArray[np.float32]
    timestamps: npt.NDArray[np.int64]
    item_keys: npt.NDArray[np.int64]
    item_index: dict[str, int] = field(repr=False)
    user_index: dict[str, int] = field(repr=False)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_ratings(self) -> int:
        return int(self.users.shape[0])


def _detect(root: Path) -> DatasetFormat:
    if not root.exists():
        raise InputError(f"{root}: dataset directory does not exist")
    if not root.is_dir():
        raise InputError(f"{root}: expected a directory holding a MovieLens dataset")
    if (root / "ratings.csv").exists() or (root / "movies.csv").exists():
        return "ml-latest"
    if (root / "u.data").exists() or (root / "u.item").exists():
        return "ml-100k"
    raise InputError(
        f"{root}: no MovieLens dataset found (expected ratings.csv + movies.csv for "
        "ml-latest, or u.data + u.item + u.genre for ml-100k)"
    )


def _user_order(raw_users: list[str]) -> list[str]:
    distinct = set(raw_users)
    try:
        return sorted(distinct, key=int)
    except ValueError:
        return sorted(distinct)


def _build(root: Path, fmt: DatasetFormat, raw: RawData) -> Dataset:
    items = tuple(
        Item(r.item_id, r.title, r.genres, r.year, tuple(raw.tags.get(r.item_id, ())))
        for r in raw.items
    )
    item_index = {item.item_id: i for i, item in enumerate(items)}
    user_ids = tuple(_user_order(raw.users))
    user_index = {user: u for u, user in enumerate(user_ids)}
    return Dataset(
        path=root,
        format=fmt,
        items=items,
        user_ids=user_ids,
        users=np.fromiter((user_index[u] for u in raw.users), np.int32, len(raw.users)),
        items_idx=np.fromiter((item_index[i] for i in raw.item_ids), np.int32, len(raw.item_ids)),
        ratings=np.asarray(raw.ratings, dtype=np.float32),
        timestamps=np.asarray(raw.timestamps, dtype=np.int64),
        item_keys=np.asarray([r.key for r in raw.items], dtype=np.int64),
        item_index=item_index,
        user_index=user_index,
    )


def load_dataset(path: str | Path) -> Dataset:
    """Load a MovieLens directory (layout auto-detected). Bad input → ``InputError``."""
    root = Path(path)
    fmt = _detect(root)
    raw = read_ml_latest(root) if fmt == "ml-latest" else read_ml100k(root)
    if not raw.items:
        name = "movies.csv" if fmt == "ml-latest" else "u.item"
        raise InputError(f"{root / name}: the catalog is empty")
    if not raw.users:
        name = "ratings.csv" if fmt == "ml-latest" else "u.data"
        raise InputError(f"{root / name}: no ratings")
    return _build(root, fmt, raw)
