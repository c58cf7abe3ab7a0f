"""``omega bench server``: a real server and a device fleet in two child processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from omega.bench._wire import WireMeter, parse_ss
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
    assert figures["transport"] == "http"
    assert figures["wire_bytes_per_sync"] > 500  # a push of 10–30 patterns and its answer
    # The warm-up ran first, at the first rate for one step's length at most, apart.
    warmup = figures["warmup"]
    assert warmup["offered_per_s"] == 5.0 and warmup["syncs"] > 0
    assert warmup["errors"] == 0


def test_bench_server_grpc_lane_syncs_through_the_grpc_door() -> None:
    args = ["bench", "server", "--transport", "grpc", "--viewers", "20", "--rates", "5,10"]
    args += ["--step-seconds", "1.5", "--p95-limit-ms", "10000", "--federation-interval", "0"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["transport"] == "grpc"
    assert figures["errors"] == 0
    steps = figures["steps"]
    assert [s["offered_per_s"] for s in steps] == [5.0, 10.0]
    for step in steps:
        assert step["syncs"] > 0 and step["ok"] == step["syncs"]
        assert step["patterns_pushed"] >= 10 * step["syncs"]
    assert figures["wire_bytes_per_sync"] > 500


def test_bench_server_refuses_an_unknown_transport_and_grpc_over_workers() -> None:
    with pytest.raises(InputError, match="--transport"):
        run_server_bench(viewers=5, rates=(5.0,), transport="carrier-pigeon")
    with pytest.raises(InputError, match="--workers 1"):
        run_server_bench(viewers=5, rates=(5.0,), transport="grpc", workers=2)


def test_wire_counters_are_read_from_ss_output() -> None:
    sample = (
        "0      0      127.0.0.1:40000 127.0.0.1:8000\n"
        "\t cubic wscale:7,7 bytes_sent:1200 bytes_acked:1201 bytes_received:3400 "
        "segs_out:6 segs_in:5 data_segs_out:2\n"
        "0      0      127.0.0.1:40002 127.0.0.1:8000\n"
        "\t cubic bytes_received:10 segs_out:1 segs_in:1\n"
    )
    snapshot = parse_ss(sample)
    assert snapshot == {
        ("127.0.0.1:40000", "127.0.0.1:8000"): (4600, 11),
        ("127.0.0.1:40002", "127.0.0.1:8000"): (10, 2),
    }
    later = {**snapshot, ("127.0.0.1:40000", "127.0.0.1:8000"): (5600, 15)}
    later[("127.0.0.1:40004", "127.0.0.1:8000")] = (200, 2)  # opened during the step
    assert WireMeter.per_request(snapshot, later, 4) == {
        "wire_bytes_per_sync": 300.0,
        "wire_segments_per_sync": 1.5,
    }
    assert WireMeter.per_request(None, later, 4)["wire_bytes_per_sync"] is None


def test_bench_server_refuses_an_empty_rate_list() -> None:
    with pytest.raises(InputError, match="max-rate"):
        run_server_bench(viewers=5, rates=(100.0,), max_rate=10.0)


def test_bench_server_puts_storages_and_worker_counts_side_by_side() -> None:
    args = ["bench", "server", "--db", "sqlite,embedded-postgres", "--workers", "1,2"]
    # 40 syncs a run: PostgreSQL's CPU (~1.3 ms a sync) spans several of the kernel's
    # 10 ms CPU-time ticks (at 5/s for 1.5 s it could round to 0).
    args += ["--viewers", "20", "--rates", "20", "--step-seconds", "2"]
    args += ["--p95-limit-ms", "10000", "--federation-interval", "0", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert [(r["storage"], r["workers"]) for r in runs] == [
        ("sqlite", 1),
        ("sqlite", 2),
        ("postgresql (embedded, durable)", 1),
        ("postgresql (embedded, durable)", 2),
    ]
    sqlite, postgres = runs[0], runs[2]
    for run in runs:
        assert run["errors"] == 0
        (step,) = run["steps"]
        assert step["syncs"] > 0 and step["ok"] == step["syncs"]
        assert run["server_cpu_ms_per_sync"] > 0
    # PostgreSQL's own processes are measured when the bench started them; SQLite has none.
    assert sqlite["db_cpu_ms_per_sync"] is None
    assert postgres["db_cpu_ms_per_sync"] > 0


@pytest.mark.parametrize("db", ["mysql://x", "sqlite,,embedded-postgres"])
def test_bench_server_names_the_db_flag_for_a_storage_it_cannot_use(db: str) -> None:
    command = [sys.executable, "-m", "omega.cli", "bench", "server", "--db", db, "--rates", "5"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "--db" in result.stderr
    assert "Traceback" not in result.stderr


def test_bench_server_profile_splits_the_server_cpu_by_stage(tmp_path: Path) -> None:
    raw = tmp_path / "stacks.txt"
    args = ["bench", "server", "--viewers", "20", "--rates", "20", "--step-seconds", "3"]
    args += ["--p95-limit-ms", "10000", "--federation-interval", "0", "--profile", str(raw)]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)["profile"]
    assert raw.exists() and profile["raw_stacks"] == str(raw)
    assert profile["samples"] > 0 and profile["syncs"] > 0
    stages = {s["stage"]: s for s in profile["stages"]}
    assert abs(sum(s["share"] for s in stages.values()) - 1) < 0.01
    assert (
        abs(sum(s["ms_per_sync"] for s in stages.values()) - profile["server_cpu_ms_per_sync"])
        < 0.05
    )
    # Every sync goes through the route's stages: some of their samples are there (how
    # many lands in each depends on where the sampler happens to look).
    route = ("decode request", "store push", "pull: read + fit", "seal + encode answer")
    assert sum(stages[name]["samples"] for name in route) > 0


def test_bench_server_grpc_fleet_larger_than_a_connections_stream_cap() -> None:
    # 150 devices each keep a stream open; one connection takes at most 100 of them
    # (MAX_STREAMS_PER_CONNECTION): the fleet needs more channels than --connections gives.
    args = ["bench", "server", "--transport", "grpc", "--viewers", "150", "--connections", "8"]
    args += ["--rates", "60", "--step-seconds", "3", "--p95-limit-ms", "10000"]
    result = CliRunner().invoke(app, [*args, "--federation-interval", "0", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["errors"] == 0, figures["steps"]
    (step,) = figures["steps"]
    assert step["syncs"] >= 150 and step["ok"] == step["syncs"]
