"""The HTTP/3 benches: the server bench's fleet through the QUIC door, and fresh against
resumed (0-RTT) connections — each a real server and real QUIC on loopback."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from omega.bench.quic_resume import run_quic_resume_bench
from omega.bench.server import run_server_bench
from omega.cli.bench import app as bench_app
from omega.errors import InputError

app = typer.Typer()
app.add_typer(bench_app, name="bench")


def test_the_fleet_syncs_through_the_quic_door() -> None:
    args = ["bench", "server", "--transport", "quic", "--viewers", "20", "--rates", "5,10"]
    args += ["--step-seconds", "1.5", "--p95-limit-ms", "10000", "--federation-interval", "0"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["transport"] == "quic" and figures["errors"] == 0
    assert [s["offered_per_s"] for s in figures["steps"]] == [5.0, 10.0]
    for step in figures["steps"]:
        assert step["syncs"] > 0 and step["ok"] == step["syncs"]
        # A push of 10–30 patterns and its answer, with QUIC's packets and acks: over 1 KB.
        assert step["wire_bytes_per_sync"] > 1000
        assert step["wire_segments_per_sync"] >= 2  # UDP datagrams: a request and its answer
    assert figures["wire_bytes_per_sync"] == figures["steps"][-1]["wire_bytes_per_sync"]


def test_bench_server_refuses_an_unknown_door_and_quic_on_several_workers() -> None:
    with pytest.raises(InputError, match="--transport"):
        run_server_bench(viewers=5, rates=(10.0,), transport="carrier-pigeon")
    with pytest.raises(InputError, match="one server process"):
        run_server_bench(viewers=5, rates=(10.0,), transport="quic", workers=2)


def test_a_resumed_connection_pulls_in_early_data() -> None:
    figures = run_quic_resume_bench(repeats=2)
    assert figures["pull"]["sent_as_early_data"] == 2  # every resumed pull went as 0-RTT
    assert figures["sync"]["sent_as_early_data"] == 0  # a POST waits for the handshake
    for request in ("pull", "sync"):
        for kind in ("fresh", "resumed"):
            summary = figures[request][kind]
            assert 0 < summary["min_ms"] <= summary["p50_ms"] <= summary["max_ms"]
            assert summary["wire_bytes"] > 1200  # a client's first datagram is at least that
