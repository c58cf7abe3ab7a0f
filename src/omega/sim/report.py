"""``omega simulate --report DIR``: the result as JSON, a Markdown summary and PNG plots.

Also the Rich tables the terminal shows at the end of a run. Every reader tolerates
missing sections (no attack, no timeline, a skipped baseline): that row, line or plot is
left out rather than invented.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from omega.errors import ConfigError
from omega.sim._report_data import (
    QUALITY_COLUMNS,
    SHORT_LABELS,
    Check,
    QualityRow,
    attack_checks,
    byte_checks,
    fmt,
    fmt_share,
    fmt_wall,
    jsonable,
    number,
    privacy_checks,
    quality_rows,
    section,
)
from omega.sim._report_personalisation import (
    cold_start_png,
    history_png,
    personalisation_markdown,
)
from omega.sim._report_plots import (
    FEW_VIEWERS,
    attack_exposure_png,
    bytes_per_sync_png,
    quality_over_time_figure,
    quality_over_time_png,
)

__all__ = [
    "FEW_VIEWERS",
    "PLOTS",
    "check_report_directory",
    "quality_over_time_figure",
    "quality_table",
    "render_markdown",
    "summary_table",
    "write_report",
]

# file name → (title for the Markdown link, what it shows, renderer)
PLOTS: dict[str, tuple[str, str, Callable[[Mapping[str, Any]], bytes | None]]] = {
    "quality_over_time.png": (
        "Quality over simulated time",
        "NDCG@10 of Omega vs local-only as the replay advances, each point with the viewers "
        f"it measured (hollow: fewer than {FEW_VIEWERS}, not comparable); other baselines at "
        "their final values",
        quality_over_time_png,
    ),
    "bytes_per_sync.png": (
        "Bytes per sync",
        "push and pull sizes per sync against the 1 KB / 5 KB targets",
        bytes_per_sync_png,
    ),
    "attack_exposure.png": (
        "Exposure under attack",
        "the promoted item's exposure and NDCG@10, clean vs attacked",
        attack_exposure_png,
    ),
    "personalisation_by_history.png": (
        "Personalisation speed",
        "NDCG@10 (ties broken fairly) by the viewer's training interactions, for Omega, "
        "local-only and popularity",
        history_png,
    ),
    "cold_start.png": (
        "Cold start",
        "NDCG@10 (ties broken fairly) of a new TV after its first k events, k = 0 … 10",
        cold_start_png,
    ),
}


def check_report_directory(directory: Path) -> Path:
    """Create ``directory`` if needed and prove it writable; ``ConfigError`` if not.

    Call it before a long run so a bad ``--report DIR`` fails in a second, not at the end.
    """
    directory = _not_a_file(directory)
    probe = directory / ".omega-report-probe"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot write the report to {directory}: {reason}") from exc
    return directory


def write_report(result: Mapping[str, Any], directory: Path) -> list[Path]:
    """Write report.json, report.md and the plots the result has data for into ``directory``.

    Creates the directory if needed. Returns the written paths (JSON, Markdown, then
    PNGs). A plot of ours left from an earlier run whose section is now missing is
    removed, so the folder never shows a stale picture. ``ConfigError`` if the directory
    cannot be created or written.
    """
    directory = _not_a_file(directory)
    # Render everything first: a bad result raises before anything is written.
    body = json.dumps(jsonable(result), indent=2, ensure_ascii=False) + "\n"
    pictures = {name: render(result) for name, (_, _, render) in PLOTS.items()}
    drawn = [name for name, png in pictures.items() if png is not None]
    markdown = render_markdown(result, plots=drawn)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = [_write(directory / "report.json", body.encode())]
        written.append(_write(directory / "report.md", markdown.encode()))
        for name, png in pictures.items():
            if png is not None:
                written.append(_write(directory / name, png))
            else:
                (directory / name).unlink(missing_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot write the report to {directory}: {reason}") from exc
    return written


def _not_a_file(directory: Path) -> Path:
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"report directory {directory} is a file, not a directory")
    return directory


def _write(path: Path, data: bytes) -> Path:
    # Write beside the target, then rename: a reader never sees half a file.
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.replace(path)
    return path


def render_markdown(result: Mapping[str, Any], *, plots: list[str] | None = None) -> str:
    """The Markdown summary; ``plots`` are the PNG file names to link (default: none)."""
    lines = ["# Omega simulation report", ""]
    lines += _run_facts(result)
    lines += _quality_section(result)
    lines += personalisation_markdown(result)
    lines += _check_section("Bytes on the wire", byte_checks(result))
    lines += _privacy_section(result)
    lines += _attack_section(result)
    timings = {k: number(v) for k, v in section(result, "timings").items()}
    if timings:
        lines += ["", "## Timings", "", "| stage | seconds |", "| --- | ---: |"]
        lines += [f"| {k} | {fmt(v, '.2f')} |" for k, v in timings.items()]
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"- [{PLOTS[n][0]}]({n}): {PLOTS[n][1]}" for n in plots if n in PLOTS]
    return "\n".join(lines) + "\n"


def _run_facts(result: Mapping[str, Any]) -> list[str]:
    facts = [
        ("dataset", f"`{result['dataset']}`" if result.get("dataset") else None),
        ("format", result.get("format")),
        ("viewers", _count(result.get("viewers"))),
        ("items", _count(result.get("items"))),
        ("events", _count(result.get("events"))),
        ("seed", result.get("seed")),
        ("held out", result.get("holdout")),
        ("constellation", result.get("constellation")),
        ("wall time", fmt_wall(number(result.get("wall_s"))) if "wall_s" in result else None),
    ]
    lines = ["| run | |", "| --- | --- |"]
    return lines + [f"| {name} | {value} |" for name, value in facts if value is not None]


def _quality_section(result: Mapping[str, Any]) -> list[str]:
    rows = quality_rows(result)
    if not rows:
        return []
    lines = [
        "",
        "## Recommendation quality",
        "",
        f"Each viewer's {_held_out(result)} interaction held out; all unseen items ranked. "
        "Figures are tie-fair: expected under uniformly random tie-breaking. "
        "*pess.*: tied items count against the held-out one. Recall@10 = HR@10 (one "
        "relevant item per viewer); coverage@10: share of the catalog in some viewer's top 10.",
        "",
        "| model | " + " | ".join(head for _, head in QUALITY_COLUMNS) + " | × local-only |",
        "| --- |" + " ---: |" * (len(QUALITY_COLUMNS) + 1),
    ]
    for row in rows:
        name = f"**{row.label}**" if row.key == "omega" else row.label
        if row.skipped:
            lines.append(f"| {name} | skipped |" + " |" * len(QUALITY_COLUMNS))
            continue
        ratio = fmt(row.vs_local, ".2f") + "×" if row.vs_local is not None else "—"
        lines.append(f"| {name} | " + " | ".join([*row.cells(), ratio]) + " |")
    return lines + _paired_lines(rows, section(result, "baselines"))


def _paired_lines(rows: list[QualityRow], baselines: Mapping[str, Any]) -> list[str]:
    """Omega's NDCG@10 less each row's on the same viewers, ± the difference's standard
    error (nothing for a result from before the paired figures)."""
    pairs = []
    for row in rows:
        figures = section(baselines, row.key)
        diff = number(figures.get("omega_minus_ndcg@10"))
        se = number(figures.get("omega_minus_ndcg@10_se"))
        if diff is not None and se is not None:
            pairs.append(f"{row.label} {diff:+.4f} ± {se:.4f}")
    if not pairs:
        return []
    return [
        "",
        "Omega's NDCG@10 less each row's, paired on the same viewers (± the difference's "
        "standard error; a difference within about 2 SE could be one run's noise): "
        + "; ".join(pairs)
        + ".",
    ]


def _privacy_section(result: Mapping[str, Any]) -> list[str]:
    privacy = privacy_checks(result)
    if not privacy:
        return []
    leaked = [c.label for c in privacy if c.met is False]
    verdict = f"**LEAK: {', '.join(leaked)}**" if leaked else "Nothing private left the TVs."
    return [*_check_section("Privacy audit", privacy), "", verdict]


def _attack_section(result: Mapping[str, Any]) -> list[str]:
    attack = section(result, "attack")
    if not attack:
        return []
    kind = attack.get("kind") or "attack"
    title = f"Attack: {kind}, {fmt_share(number(attack.get('attackers')))} attackers"
    lines = _check_section(title, attack_checks(attack))
    honest = number(attack.get("honest_viewers"))
    if honest is not None:
        lines += [
            "",
            f"Measured on the {honest:,.0f} honest viewers only; the clean fleet is the one "
            "the Omega row above measures on every viewer.",
        ]
    target = attack.get("target_title") or attack.get("target_item")
    if target:
        item = attack.get("target_item")
        lines += ["", f"Target item: {target}" + (f" (`{item}`)" if item != target else "")]
    return lines


def _check_section(title: str, checks: list[Check]) -> list[str]:
    if not checks:
        return []
    lines = ["", f"## {title}", "", "| figure | value | target | |", "| --- | ---: | --- | --- |"]
    lines += [f"| {c.label} | {c.value} | {c.target} | {c.verdict} |" for c in checks]
    return lines


def _held_out(result: Mapping[str, Any]) -> str:
    """Which interaction the run held out: the last, or the second-to-last (--validation)."""
    return "second-to-last" if str(result.get("holdout", "")).startswith("second") else "last"


def _count(value: Any) -> str | None:
    as_number = number(value)
    return None if as_number is None else f"{as_number:,.0f}"


#: The terminal's columns, short to fit 80 characters (all at k = 10; Recall@10, equal
#: to HR@10 with one relevant title, left out).
_TERMINAL_COLUMNS = (
    ("ndcg@10", "NDCG"),
    ("ndcg@10_pessimistic", "pess."),
    ("hr@10", "HR"),
    ("hr@10_pessimistic", "pess."),
    ("mrr", "MRR"),
    ("map@10", "MAP"),
    ("coverage@10", "cov."),
)


def quality_table(result: Mapping[str, Any]) -> Table:
    """Omega and each baseline: the headline figures (tie-fair, pessimistic beside), MRR,
    MAP@10, coverage@10 and × local-only, narrow enough for an 80-column terminal."""
    viewers = _count(result.get("viewers"))
    title = "Recommendation quality" + (f" — {viewers} viewers" if viewers else "")
    table = Table(
        title=title,
        caption=f"{_held_out(result)} interaction held out, full ranking, k = 10; "
        "tie-fair (expected under random tie-breaking); pess.: ties count against; "
        "Recall@10 = HR@10 (one relevant title); cov.: share of the catalog in a top 10",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("model")
    for _, column in _TERMINAL_COLUMNS:
        table.add_column(column, justify="right")
    table.add_column("× local", justify="right")
    for row in quality_rows(result):
        label = SHORT_LABELS.get(row.key, row.label)
        style = "bold cyan" if row.key == "omega" else ("dim" if "ref." in row.label else None)
        if row.skipped:
            table.add_row(label, "skipped", *([""] * len(_TERMINAL_COLUMNS)), style="dim")
            continue
        ratio = f"{row.vs_local:.2f}×" if row.vs_local is not None else "—"
        table.add_row(label, *row.cells(_TERMINAL_COLUMNS), ratio, style=style)
    return table


def summary_table(result: Mapping[str, Any]) -> Table:
    """Bytes on the wire, the privacy audit and the attack figures, each with its target."""
    table = Table(title="Sync, privacy and robustness", header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target")
    table.add_column("")
    groups = [byte_checks(result), privacy_checks(result)]
    attack = section(result, "attack")
    if attack:
        kind = attack.get("kind") or "attack"
        share = fmt_share(number(attack.get("attackers")))
        target = attack.get("target_title") or attack.get("target_item") or "—"
        groups.append(
            [Check("attack", f"{kind}, {share} attackers"), Check("attack target", str(target))]
            + [
                Check(f"under attack: {c.label}", c.value, c.target, c.met)
                for c in attack_checks(attack)
            ]
        )
    for checks in groups:
        for index, check in enumerate(checks):
            colour = {True: "green", False: "bold red", None: ""}[check.met]
            verdict = f"[{colour}]{check.verdict}[/]" if colour else ""
            table.add_row(
                check.label,
                check.value,
                check.target,
                verdict,
                end_section=index == len(checks) - 1,
            )
    wall = number(result.get("wall_s"))
    if wall is not None:
        table.add_row("wall time", fmt_wall(wall), "", "")
    return table
