"""Catalog files and records as :class:`CatalogItem`: what ``omega brain catalog-import``
and the C SDK's imports read.

A file is CSV with a header row, or JSON lines (``.jsonl``/``.ndjson``), with the keys
``item_id`` (or ``movieId``/``id``), ``title``, ``genres`` (``"A|B"``, or a JSON list),
``year``, ``runtime_min`` and ``description``; only the id and the title are required.
CSV is comma-separated (a UTF-8 byte order mark is fine). Anything else is an
:class:`InputError` naming the file and the row, and the columns found: a file separated
by ``;`` or tabs, an unterminated quote, a row with more fields than the header, a file
with no titles at all (an empty import is a mistake, not a success).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path

from omega.brain.catalog import CatalogItem
from omega.errors import InputError

__all__ = ["catalog_item", "read_catalog"]


def read_catalog(path: Path) -> list[CatalogItem]:
    """Every title in the file at ``path``."""
    return [catalog_item(row, f"{path}: row {n}") for n, row in enumerate(_rows(path), 2)]


def catalog_item(row: Mapping[str, object], where: str) -> CatalogItem:
    """One record (the keys above) as a title; ``where`` starts each error's sentence."""
    item_id = str(row.get("item_id") or row.get("movieId") or row.get("id") or "").strip()
    title = str(row.get("title") or "").strip()
    if not item_id or not title:
        raise InputError(f"{where} needs an item_id (or movieId) and a title")
    genres = row.get("genres") or ""
    genre_list = (
        [str(g) for g in genres]
        if isinstance(genres, list)
        else [g for g in str(genres).split("|") if g and g != "(no genres listed)"]
    )
    try:
        year = _optional_int(row.get("year"))
        runtime = _optional_int(row.get("runtime_min"))
    except ValueError as exc:
        raise InputError(f"{where}: year and runtime_min must be integers") from exc
    return CatalogItem(
        item_id=item_id,
        title=title,
        genres=tuple(genre_list),
        year=year,
        runtime_min=runtime,
        description=str(row.get("description") or ""),
    )


def _optional_int(value: object) -> int | None:
    if value is None or value == "":
        return None
    if not isinstance(value, int | float | str):
        raise ValueError(f"not an integer: {value!r}")
    return int(value)


def _rows(path: Path) -> list[dict[str, object]]:
    if not path.is_file():
        raise InputError(f"catalog file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read catalog file {path}: {exc}") from exc
    rows = _json_rows(path, text) if path.suffix in (".jsonl", ".ndjson") else _csv_rows(path, text)
    if not rows:
        raise InputError(f"catalog file {path} holds no titles")
    return rows


def _json_rows(path: Path, text: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{n}: not valid JSON: {exc.msg}") from exc
        if not isinstance(row, dict):
            raise InputError(f"{path}:{n}: each line must be a JSON object")
        rows.append({str(k): v for k, v in row.items()})
    return rows


def _csv_rows(path: Path, text: str) -> list[dict[str, object]]:
    table = _csv_records(path, text)
    if not table:
        return []
    header = [name.strip() for name in table[0][1]]
    _check_header(path, header)
    rows: list[dict[str, object]] = []
    for line, values in table[1:]:
        if len(values) != len(header):
            raise InputError(
                f"{path}: line {line} has {len(values)} fields where the header has "
                f"{len(header)} ({', '.join(header)}); quote a value that holds a comma"
            )
        rows.append(dict(zip(header, values, strict=True)))
    return rows


def _csv_records(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """The non-blank records, each with the line it starts on."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    start = 1
    try:  # strict: an unterminated quote is an error, not one long title
        for values in reader:
            if any(v.strip() for v in values):
                records.append((start, values))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(
            f"{path}: line {start}: a quoted value is never closed, or a quote is misplaced ({exc})"
        ) from exc
    return records


def _check_header(path: Path, header: list[str]) -> None:
    """Refuse a header with no id or title column, saying what it has instead."""
    if {"item_id", "movieId", "id"} & set(header) and "title" in header:
        return
    found = ", ".join(repr(h) for h in header)
    hint = next(
        (
            f"; is it separated by {name}? Omega reads comma-separated CSV"
            for mark, name in ((";", "';'"), ("\t", "tabs"), ("|", "'|'"))
            if len(header) == 1 and mark in header[0]
        ),
        "",
    )
    raise InputError(
        f"{path}: the header needs an item_id (or movieId or id) column and a title column; "
        f"it has {len(header)} column{'s' if len(header) != 1 else ''}: {found}{hint}"
    )
