"""``omega bench server``: a real server and a device fleet in two child processes."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from omega.bench.server import run_server_bench
from omega.cli.bench import app as bench_app
from omega.errors import InputError

app = typer.Typer()
app.add_typer(bench_app, name="bench")


def test_bench_server_tiny_run_reports_every_step() -> None:
    args = ["bench", "server", "--viewers", "20", "--rates", "5,10", "--step-seconds", "1.5"]
    # A loose latency bar: a step that misses it ends the run, and this test is about
    # every step being reported, not about how fast a shared machine is.
    args += ["--p95-limit-ms", "10000", "--federation-interval", "0", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    for key in ("viewers", "syncs_per_s", "sync_p50_ms", "sync_p95_ms", "errors", "steps"):
        assert key in figures
    assert figures["viewers"] == 20
    assert figures["errors"] == 0
    assert figures["federation_interval"] == 0
    assert figures["p95_limit_ms"] == 10000
    assert figures["rate_limit_per_min"] >= 60  # the server default, or room for the steps
    steps = figures["steps"]
    assert [s["offered_per_s"] for s in steps] == [5.0, 10.0]
    for step in steps:
        assert step["syncs"] > 0
        assert step["ok"] == step["syncs"]
        assert step["patterns_pushed"] >= 10 * step["syncs"]  # every sync pushed 10–30
        assert step["p50_ms"] <= step["p95_ms"] <= step["max_ms"]


def test_bench_server_refuses_an_empty_rate_list() -> None:
    with pytest.raises(InputError, match="max-rate"):
        run_server_bench(viewers=5, rates=(100.0,), max_rate=10.0)
