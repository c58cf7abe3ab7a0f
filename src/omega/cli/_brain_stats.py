"""``omega brain stats`` for people: counts and sizes, then one table each for the skills,
the memory tiers and the loops, with dates instead of epoch seconds. ``--json`` prints
``Brain.stats()`` as it is."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from omega.brain.skills import SELF_TESTED, SKILLS
from omega.cli._output import console

__all__ = ["show_stats"]

#: The counts and sizes of the first table, as (key in Brain.stats(), label, format).
_FIGURES = (
    ("directory", "directory", str),
    ("items", "titles in the catalog", str),
    ("episodes", "events tracked", str),
    ("patterns", "patterns learned", str),
    ("shareable_patterns", "… of them shareable", str),
    ("collective_patterns", "patterns from the constellation", str),
    ("outbox", "patterns waiting to be pushed", str),
    ("codebook_id", "codebook", str),
    ("codebook_cells", "codebook cells", str),
    ("release_version", "release applied", lambda v: str(v) if v else "none yet"),
    ("last_sync", "last sync (UTC)", lambda v: when(v, never="never")),
    ("footprint_bytes", "learned state (without the catalog)", lambda v: size(v)),
    ("db_bytes", "brain.db", lambda v: size(v)),
    ("index_bytes", "index.usearch", lambda v: size(v)),
    ("schema_version", "schema version", str),
)


def show_stats(stats: Mapping[str, Any], *, title: str) -> None:
    figures = Table(title=title, show_header=False)
    figures.add_column(style="bold")
    figures.add_column(overflow="fold")
    for key, label, shown in _FIGURES:
        if key in stats:
            figures.add_row(label, shown(stats[key]))
    console.print(figures)
    console.print(_skills(stats.get("skills") or {}))
    console.print(_tiers(stats.get("tiers") or {}))
    console.print(_loops(stats.get("loops") or {}))


def _skills(used: Mapping[str, Mapping[str, float]]) -> Table:
    table = Table(title="skills (how recommendations are weighted)", header_style="bold")
    for column in ("skill", "favours", "lists shown", "watched", "self-test MRR"):
        table.add_column(column)
    for name, skill in SKILLS.items():
        record = used.get(name, {})
        mrr = record.get("self_test_mrr")
        table.add_row(
            name + (" (self-tested)" if name in SELF_TESTED else ""),
            skill.description,
            f"{record.get('uses', 0):g}",
            f"{record.get('successes', 0):g}",
            "—" if mrr is None else f"{mrr:.3f}",
        )
    return table


def _tiers(tiers: Mapping[str, Mapping[str, float]]) -> Table:
    table = Table(title="memory tiers (taste at each time scale)", header_style="bold")
    for column in ("tier", "half-life", "strength"):
        table.add_column(column)
    table.add_column("last updated (UTC)", no_wrap=True)
    for name, tier in tiers.items():
        half_life = tier.get("half_life_h", -1.0)
        table.add_row(
            name,
            "from the constellation" if half_life < 0 else duration(half_life * 3600),
            f"{tier.get('strength', 0.0):.2f}",
            when(tier.get("updated_at")),
        )
    return table


def _loops(loops: Mapping[str, Mapping[str, Any]]) -> Table:
    table = Table(title="loops", header_style="bold")
    table.add_column("loop", no_wrap=True)
    table.add_column("scale, driven by", no_wrap=True)
    table.add_column("does", overflow="fold")
    table.add_column("last ran (UTC)", no_wrap=True)
    for name, loop in loops.items():
        table.add_row(
            name,
            f"{duration(float(loop.get('period_s', 0.0)))}, {loop.get('driver', '')}",
            str(loop.get("does", "")),
            when(loop.get("last_ran")),
        )
    return table


def when(ts: object, *, never: str = "—") -> str:
    """Epoch seconds as a date and time (UTC); ``never`` for none (or 0)."""
    if not isinstance(ts, int | float) or not ts or not math.isfinite(ts):
        return never
    return datetime.fromtimestamp(float(ts), tz=UTC).strftime("%Y-%m-%d %H:%M")


def duration(seconds: float) -> str:
    """A period in the largest unit that keeps it a round-ish number."""
    for unit, length in (("y", 365 * 86400.0), ("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= length:
            return f"{seconds / length:g} {unit}"
    return f"{seconds:g} s"


def size(value: object) -> str:
    """Bytes in KiB/MiB/GiB."""
    amount = float(value) if isinstance(value, int | float) else 0.0
    for unit in ("B", "KiB", "MiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"
