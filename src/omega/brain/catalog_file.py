"""Catalog files and records as :class:`CatalogItem`: what ``omega brain catalog-import``
and the C SDK's imports read.

A file is CSV with a header row, or JSON lines (``.jsonl``/``.ndjson``), with the keys
``item_id`` (or ``movieId``/``id``), ``title``, ``genres`` (``"A|B"``, or a JSON list),
``year``, ``runtime_min`` and ``description``; only the id and the title are required.
Anything else is an :class:`InputError` naming the file and the row.
"""

from __future__ import annotations

import csv
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
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read catalog file {path}: {exc}") from exc
    if path.suffix not in (".jsonl", ".ndjson"):
        return [dict(r) for r in csv.DictReader(text.splitlines())]
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
