"""``omega bench sync|federation --json`` print the figures the benchmarks measured."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from omega.cli.bench import app as bench_app

# Mounted as in `omega`, so `sync` stays a subcommand however many commands bench has.
app = typer.Typer()
app.add_typer(bench_app, name="bench")


def test_bench_sync_json() -> None:
    args = ["bench", "sync", "--pushes", "10", "--repeats", "1", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    for key in (
        "push_bytes_median",
        "push_bytes_p95",
        "pull_bytes_median",
        "pull_bytes_p95",
        "encode_us_median",
        "decode_us_median",
    ):
        assert figures[key] > 0
    assert figures["pushes"] == 10


def test_bench_sync_refuses_zero_pushes() -> None:
    result = CliRunner().invoke(app, ["bench", "sync", "--pushes", "0"])
    assert result.exit_code == 2
    assert "'--pushes'" in result.output


def test_bench_federation_json() -> None:
    args = ["bench", "federation", "--patterns", "3000", "--viewers", "150", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["patterns"] == 3000
    assert row["viewers"] == 150
    assert row["status"] == "released"
    assert row["released"] > 0
    assert row["patterns_per_s"] > 0
