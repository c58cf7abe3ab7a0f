"""``omega bench connections``: a real ``omega serve`` holding every device's own
connection, from two client processes; the figures are there and add up (a small fleet:
no timing is asserted)."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from omega.bench.server import server_command
from omega.bench.serving import ServerProcess, free_port
from omega.cli.bench import app as bench_app

app = typer.Typer()
app.add_typer(bench_app, name="bench")


@pytest.mark.parametrize(("transport", "devices"), [("http", 200), ("grpc", 200), ("quic", 60)])
def test_every_device_holds_its_own_connection(transport: str, devices: int) -> None:
    args = ["bench", "connections", "--devices", str(devices), "--clients", "2"]
    args += ["--transport", transport, "--rate", "20", "--seconds", "3", "--idle-seconds", "1"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["connections_held"] == devices
    assert report["open_errors"] == report["errors"] == report["check_errors"] == 0
    assert report["reopened"] == 0
    assert report["client_processes"] == 2
    if transport == "quic":  # one UDP socket carries every QUIC connection
        assert report["server_fds_per_connection"] == 0
    else:  # one socket per device on the server, still open after the syncs
        assert report["server_fds_open"] - report["server_fds_before"] >= devices
        assert report["server_fds_end"] >= report["server_fds_open"]
        assert 0.99 <= report["server_fds_per_connection"] <= 1.1
    assert report["syncing_devices"] == devices // 10
    assert report["syncs"] > 0
    assert 0 < report["sync_p50_ms"] <= report["sync_p95_ms"]
    assert report["server_cpu_ms_per_sync"] is not None
    assert report["patterns_pushed"] > 0
    assert "RLIMIT_NOFILE" in report["open_files_limit"]["note"]
    found = report["extrapolation"]
    kb = report["server_kb_per_connection"]
    assert found["connections"] == 100_000
    assert found["server_memory_mb"] == pytest.approx(
        report["server_rss_mb_before"] + kb * 100_000 / 1024, abs=0.1
    )
    assert found["server_fds"] == round(
        report["server_fds_before"] + report["server_fds_per_connection"] * 100_000
    )
    assert f"{kb} KB × 100,000" in found["server_memory_arithmetic"]


def test_bad_input_names_the_flag() -> None:
    result = CliRunner().invoke(app, ["bench", "connections", "--devices", "0"])
    assert result.exit_code != 0
    assert "--devices" in str(result.exception)
    result = CliRunner().invoke(app, ["bench", "connections", "--sync-share", "2"])
    assert "--sync-share" in str(result.exception)


def test_omega_serve_keeps_idle_connections_as_long_as_told(tmp_path: Path) -> None:
    """``OMEGA_HTTP_KEEP_ALIVE`` reaches uvicorn: a connection idle for longer than
    uvicorn's own 5 s still answers (the bench holds connections for minutes)."""
    port = free_port()
    command, env = server_command(
        port=port,
        data_dir=tmp_path,
        db_url=None,
        federation_interval=0,
        workers=1,
        rate_limit=60,
    )
    env["OMEGA_HTTP_KEEP_ALIVE"] = "60"
    server = ServerProcess(
        command, env=env, base_url=f"http://127.0.0.1:{port}", log_path=tmp_path / "server.log"
    )
    try:
        server.start()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request("GET", "/healthz")
            assert connection.getresponse().read()
            assert connection.sock is not None
            first = connection.sock.getsockname()
            time.sleep(6.5)  # past uvicorn's default keep-alive: closed without the setting
            connection.request("GET", "/healthz")  # RemoteDisconnected if it was closed
            assert connection.getresponse().status == 200
            assert connection.sock.getsockname() == first  # the same connection
        finally:
            connection.close()
    finally:
        server.stop()
