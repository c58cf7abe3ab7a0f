"""``omega bench mcp``: a real ``omega mcp viewer`` process on stdio, timed call by call
beside the brain's own time in each call."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from omega.cli.bench import app as bench_app

app = typer.Typer()
app.add_typer(bench_app, name="bench")


def test_a_small_mcp_bench_reports_the_tool_beside_the_brain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where its brain goes
    args = ["bench", "mcp", "--catalog", "200", "--events", "20", "--calls", "20", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert list(tmp_path.iterdir()) == []  # the brain's directory removed after
    figures = json.loads(result.stdout)
    assert (figures["transport"], figures["calls"], figures["catalog_size"]) == ("stdio", 20, 200)
    for name in ("tool", "brain", "overhead"):
        assert figures[f"{name}_p50_ms"] <= figures[f"{name}_p99_ms"]
    # Each call's own brain time is inside its round trip: the overhead is what is left.
    assert 0 < figures["brain_p50_ms"] < figures["tool_p50_ms"]
    assert figures["overhead_p50_ms"] > 0 and figures["server_start_s"] > 0


def test_the_mcp_bench_refuses_zero_calls() -> None:
    result = CliRunner().invoke(app, ["bench", "mcp", "--calls", "0"])
    assert result.exit_code != 0
    assert "--calls ≥ 1" in str(result.exception)
