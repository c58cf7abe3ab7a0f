"""``omega bench sync-path``: real syncs through the app's door, tiny; the figures add up
and the answers' digest is the same on a second run (no timing is asserted)."""

from __future__ import annotations

import json
from typing import Any

import typer
from typer.testing import CliRunner

from omega.cli.bench import app as bench_app

app = typer.Typer()
app.add_typer(bench_app, name="bench")

_TINY = ["bench", "sync-path", "--viewers", "4", "--syncs", "24", "--rounds", "2"]


def _run(*extra: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, [*_TINY, "--in-flight", "3", *extra, "--json"])
    assert result.exit_code == 0, result.output
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


def test_the_figures_add_up_and_the_answers_digest_repeats() -> None:
    first = _run("--digest")
    assert first["syncs_per_round"] == 24 and first["viewers"] == 4
    assert len(first["ms_per_sync"]) == 2 and all(ms > 0 for ms in first["ms_per_sync"])
    assert first["min_ms"] == min(first["ms_per_sync"]) <= first["median_ms"]
    assert first["syncs_per_cpu_second"] == round(1000 / first["min_ms"])
    assert len(first["digest"]) == 64
    assert _run("--digest")["digest"] == first["digest"]
    assert _run("--digest", "--seed", "1")["digest"] != first["digest"]
    assert "digest" not in _run()


def test_a_round_of_no_syncs_is_refused() -> None:
    result = CliRunner().invoke(app, ["bench", "sync-path", "--syncs", "0"])
    assert result.exit_code == 2
    assert "--syncs" in result.output
