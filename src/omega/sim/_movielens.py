"""Readers for the two MovieLens layouts: ml-latest (CSV) and ml-100k (tab/pipe files).

Each reader returns plain rows; ``omega.sim.datasets`` turns them into a ``Dataset``.
Every problem is reported as ``InputError`` naming the file and the 1-based line.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from omega.errors import InputError

__all__ = ["RawData", "RawItem", "parse_year", "read_ml100k", "read_ml_latest"]

_YEAR = re.compile(r"\((\d{4})(?:\s*[-–]\s*(?:\d{4})?)?\)\s*$")
_RATINGS_HEADER = ["userId", "movieId", "rating", "timestamp"]
_MOVIES_HEADER = ["movieId", "title", "genres"]
_TAGS_HEADER = ["userId", "movieId", "tag", "timestamp"]
_NO_GENRES = "(no genres listed)"


@dataclass(frozen=True, slots=True)
class RawItem:
    item_id: str
    key: int
    title: str
    genres: tuple[str, ...]
    year: int | None


@dataclass(slots=True)
class RawData:
    items: list[RawItem]
    tags: dict[str, list[str]]
    users: list[str]
    item_ids: list[str]
    ratings: list[float]
    timestamps: list[int]


def parse_year(title: str) -> int | None:
    """The year in a trailing ``(1995)`` or ``(2007-)`` / ``(1975-1979)``, else None."""
    match = _YEAR.search(title)
    return int(match.group(1)) if match else None


def _where(path: Path, line: int) -> str:
    return f"{path}, line {line}"


def _int_id(value: str, path: Path, line: int, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{_where(path, line)}: {what} {value!r} is not an integer") from None


def _rating(value: str, path: Path, line: int) -> float:
    try:
        rating = float(value)
    except ValueError:
        raise InputError(f"{_where(path, line)}: rating {value!r} is not a number") from None
    if not math.isfinite(rating) or not 0.0 <= rating <= 5.0:
        raise InputError(f"{_where(path, line)}: rating {value!r} is not between 0 and 5")
    return rating


def _timestamp(value: str, path: Path, line: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{_where(path, line)}: timestamp {value!r} is not an integer") from None


def _csv_rows(
    path: Path, header: list[str], *, encoding: str = "utf-8"
) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) for each data row, after checking the header and column count."""
    try:
        with path.open(encoding=encoding, newline="") as handle:
            reader = csv.reader(handle)
            first = next(reader, None)
            if first is None:
                raise InputError(f"{_where(path, 1)}: the file is empty (expected a header)")
            if [field.strip().lstrip("\ufeff") for field in first] != header:
                raise InputError(
                    f"{_where(path, 1)}: header is {','.join(first)!r}, "
                    f"expected {','.join(header)!r}"
                )
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise InputError(
                        f"{_where(path, reader.line_num)}: {len(row)} columns, "
                        f"expected {len(header)}"
                    )
                yield reader.line_num, row
    except FileNotFoundError:
        raise InputError(f"{path}: file is missing") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid {encoding} text ({exc.reason})") from None
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV ({exc})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None


def _add_item(
    items: list[RawItem], seen: dict[str, int], item: RawItem, path: Path, line: int
) -> None:
    if item.item_id in seen:
        raise InputError(f"{_where(path, line)}: movie id {item.item_id} appears twice")
    seen[item.item_id] = len(items)
    items.append(item)


def _check_known(item_id: str, known: dict[str, int], path: Path, line: int) -> None:
    if item_id not in known:
        raise InputError(f"{_where(path, line)}: movie id {item_id} is not in the catalog")


def read_ml_latest(root: Path) -> RawData:
    """``movies.csv`` + ``ratings.csv`` (+ optional ``tags.csv``), UTF-8 CSV with headers."""
    items: list[RawItem] = []
    known: dict[str, int] = {}
    movies = root / "movies.csv"
    for line, (movie_id, title, genres) in _csv_rows(movies, _MOVIES_HEADER):
        movie_id = movie_id.strip()
        key = _int_id(movie_id, movies, line, "movie id")
        names = tuple(g for g in genres.split("|") if g and g != _NO_GENRES)
        title = title.strip()
        _add_item(
            items, known, RawItem(movie_id, key, title, names, parse_year(title)), movies, line
        )

    data = RawData(items, {}, [], [], [], [])
    ratings = root / "ratings.csv"
    for line, (user, movie_id, rating, ts) in _csv_rows(ratings, _RATINGS_HEADER):
        movie_id = movie_id.strip()
        _check_known(movie_id, known, ratings, line)
        data.users.append(user.strip())
        data.item_ids.append(movie_id)
        data.ratings.append(_rating(rating, ratings, line))
        data.timestamps.append(_timestamp(ts, ratings, line))

    tags = root / "tags.csv"
    if tags.exists():
        for line, (_user, movie_id, tag, _ts) in _csv_rows(tags, _TAGS_HEADER):
            movie_id = movie_id.strip()
            _check_known(movie_id, known, tags, line)
            tag = tag.strip()
            if tag:
                bucket = data.tags.setdefault(movie_id, [])
                if tag not in bucket:
                    bucket.append(tag)
    return data


def _lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    try:
        with path.open(encoding=encoding) as handle:
            for number, text in enumerate(handle, start=1):
                text = text.rstrip("\r\n")
                if text.strip():
                    yield number, text
    except FileNotFoundError:
        raise InputError(f"{path}: file is missing") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid {encoding} text ({exc.reason})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None


def _read_genres(path: Path) -> list[str]:
    """``u.genre``: ``name|index`` lines, indexes 0..n-1 in order."""
    names: list[str] = []
    for line, text in _lines(path, "latin-1"):
        parts = text.split("|")
        if len(parts) != 2:
            raise InputError(f"{_where(path, line)}: {len(parts)} columns, expected 2")
        if _int_id(parts[1], path, line, "genre index") != len(names):
            raise InputError(f"{_where(path, line)}: genre index {parts[1]} out of order")
        names.append(parts[0].strip())
    if not names:
        raise InputError(f"{path}: no genres listed")
    return names


def read_ml100k(root: Path) -> RawData:
    """``u.item`` (pipe, latin-1, genre flags) + ``u.genre`` + ``u.data`` (tab separated)."""
    genre_names = _read_genres(root / "u.genre")
    columns = 5 + len(genre_names)
    items: list[RawItem] = []
    known: dict[str, int] = {}
    movies = root / "u.item"
    for line, text in _lines(movies, "latin-1"):
        parts = text.split("|")
        if len(parts) != columns:
            raise InputError(f"{_where(movies, line)}: {len(parts)} columns, expected {columns}")
        movie_id = parts[0].strip()
        key = _int_id(movie_id, movies, line, "movie id")
        flags = parts[5:]
        if any(flag not in ("0", "1") for flag in flags):
            raise InputError(f"{_where(movies, line)}: genre flags must be 0 or 1")
        # "unknown" is ml-100k's spelling of ml-latest's "(no genres listed)".
        genres = tuple(
            name
            for name, flag in zip(genre_names, flags, strict=True)
            if flag == "1" and name != "unknown"
        )
        title = parts[1].strip()
        year = parse_year(title)
        if year is None and re.fullmatch(r"\d{2}-\w{3}-\d{4}", parts[2].strip()):
            year = int(parts[2].strip()[-4:])
        _add_item(items, known, RawItem(movie_id, key, title, genres, year), movies, line)

    data = RawData(items, {}, [], [], [], [])
    ratings = root / "u.data"
    for line, text in _lines(ratings, "latin-1"):
        parts = text.split()
        if len(parts) != 4:
            raise InputError(f"{_where(ratings, line)}: {len(parts)} columns, expected 4")
        user, movie_id, rating, ts = parts
        _check_known(movie_id, known, ratings, line)
        data.users.append(user)
        data.item_ids.append(movie_id)
        data.ratings.append(_rating(rating, ratings, line))
        data.timestamps.append(_timestamp(ts, ratings, line))
    return data
