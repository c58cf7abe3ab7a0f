"""What ``omega demo`` and ``omega simulate`` share: progress bars, the report, the output."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from omega.cli._output import console, emit, err_console

__all__ = ["cache_dir", "check_report", "emit_json", "run_with_progress", "show", "write_report"]


def cache_dir() -> Path:
    """Where embedded catalogs are cached between runs: $OMEGA_CACHE or ~/.cache/omega."""
    return Path(os.environ.get("OMEGA_CACHE", Path.home() / ".cache" / "omega"))


def check_report(report: Path | None) -> None:
    """Refuse a report directory that cannot be written now, not after a long replay."""
    if report is not None:
        from omega.sim.report import check_report_directory

        check_report_directory(report)


def run_with_progress(dataset: Any, options: Any, *, quiet: bool) -> dict[str, Any]:
    """Run a simulation with one progress bar per stage (on stderr)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from omega.sim.simulate import run_simulation

    with Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet,
        transient=False,
    ) as bars:
        tasks: dict[str, Any] = {}

        def progress(label: str, n: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bars.add_task(label, total=total)
            bars.update(tasks[label], completed=n, total=total)

        return asyncio.run(run_simulation(dataset, options, progress))


def write_report(result: dict[str, Any], report: Path | None) -> list[Path]:
    """Write report.json, report.md and the plots to ``report`` (if given)."""
    if report is None:
        return []
    from omega.sim.report import write_report as write

    return write(result, report)


def emit_json(result: dict[str, Any]) -> None:
    """The result as one JSON object, without the per-sync byte lists (the plots' data)."""
    emit({k: v for k, v in result.items() if k != "sync_bytes"}, as_json=True)


def show(result: dict[str, Any]) -> None:
    """The quality and summary tables, for people."""
    from omega.sim.report import quality_table, summary_table

    console.print(quality_table(result))
    console.print(summary_table(result))
