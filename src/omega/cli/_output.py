"""How every command prints: a Rich table for people, one JSON object for scripts."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["JsonOption", "console", "emit", "emit_rows", "err_console", "print_error"]

console = Console()
err_console = Console(stderr=True)

#: The ``--json`` flag of a command that prints one result.
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def print_error(message: str, *, code: int, kind: str, as_json: bool) -> None:
    """An error on stderr: ``error: sentence`` for people, or with ``as_json`` one JSON
    object ``{"error": sentence, "code": exit code, "kind": what went wrong}``."""
    if as_json:
        line = json.dumps({"error": message, "code": code, "kind": kind}, ensure_ascii=False)
        print(line, file=sys.stderr, flush=True)
    else:
        err_console.print(f"[bold red]error:[/] {escape(message)}")


def emit(result: Mapping[str, Any], *, as_json: bool, title: str = "") -> None:
    """Print a flat or nested mapping: JSON to stdout, or a two-column table."""
    if as_json:
        print(json.dumps(_plain(result), indent=2, sort_keys=False))
        return
    table = Table(title=title or None, show_header=True, header_style="bold")
    table.add_column("key")
    table.add_column("value", overflow="fold")
    for key, value in result.items():
        if isinstance(value, float):
            shown = f"{value:.4g}"
        elif isinstance(value, (Mapping, list, tuple)):
            shown = json.dumps(_plain(value))
        else:
            shown = str(value)
        table.add_row(str(key), shown)
    console.print(table)


def emit_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    as_json: bool,
    title: str = "",
    key: str = "items",
    empty: str = "nothing to show",
    caption: str = "",
) -> None:
    """Print a list of records: JSON ``{key: [...]}`` or a table with one row each (the
    sentence ``empty`` when there are none; ``caption`` under the table)."""
    if as_json:
        print(json.dumps({key: _plain(list(rows))}, indent=2))
        return
    if not rows:
        # soft_wrap: a long sentence (a command to copy) stays one line for the terminal
        console.print(f"{title}: {empty}" if title else empty, highlight=False, soft_wrap=True)
        return
    table = Table(title=title or None, caption=caption or None, header_style="bold")
    columns = list(rows[0].keys())
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            *(f"{v:.3f}" if isinstance(v, float) else str(v) for v in (row[c] for c in columns))
        )
    console.print(table)
