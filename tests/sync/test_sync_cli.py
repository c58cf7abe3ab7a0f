"""``omega sync DIR --server URL``: one sync from the command line, against a real server."""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import typer
from _sync_world import Server, open_brain, start_server, watch
from typer.testing import CliRunner

from omega.bench.certs import self_signed
from omega.bench.serving import bound_socket
from omega.cli import sync as sync_cli
from omega.cli.main import ExitCode, exit_code_for
from omega.clock import ManualClock
from omega.errors import ConfigError, SignatureError


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("noop")(lambda: None)  # a group, as in omega's main app
    sync_cli.register(app)
    return app


def test_omega_sync_json_pushes_and_reports(server: Server, tmp_path: Path) -> None:
    clock = ManualClock()
    tv = open_brain(tmp_path / "tv", clock)
    watch(tv, clock, [1, 2])
    tv.close()
    runner = CliRunner()
    result = runner.invoke(
        _app(), ["sync", str(tmp_path / "tv"), "--server", server.base_url, "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["pushed"] > 0  # learned before the codebook came: relearned and pushed
    assert report["accepted"] == report["pushed"]
    assert {"pulled", "version", "push_bytes", "pull_bytes", "next_sync_after"} <= set(report)

    again = runner.invoke(_app(), ["sync", str(tmp_path / "tv"), "--server", server.base_url])
    assert again.exit_code == 0, again.output
    assert "pushed" in again.output


def test_omega_sync_errors_are_one_sentence_and_an_exit_code(tmp_path: Path) -> None:
    tv = open_brain(tmp_path / "tv", ManualClock())
    tv.close()
    command = [str(Path(sys.executable).parent / "omega")]
    cases = [
        (["sync", str(tmp_path / "missing"), "--server", "http://127.0.0.1:9"], 2),
        (["sync", str(tmp_path / "tv"), "--server", "ftp://nowhere"], 2),
        (["sync", str(tmp_path / "tv"), "--server", "http://127.0.0.1:9"], 6),
        (["sync", str(tmp_path / "tv"), "--server", "http://x", "--release-key", "k=AAAA"], 2),
    ]
    for args, code in cases:
        done = subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert "error:" in done.stderr and "Traceback" not in done.stderr


def test_omega_sync_pins_a_release_key_given_out_of_band(server: Server, tmp_path: Path) -> None:
    keys = httpx.get(server.base_url + "/api/omega/release-keys").json()
    kid = keys["signing_kid"]
    wrong = base64.b64encode(bytes(32)[:-1] + b"\x01").decode()
    runner = CliRunner()
    for name, pin in [("right", keys["keys"][kid]), ("wrong", wrong)]:
        tv = open_brain(tmp_path / name, ManualClock())
        tv.close()
        args = ["sync", str(tmp_path / name), "--server", server.base_url]
        result = runner.invoke(_app(), [*args, "--release-key", f"{kid}={pin}", "--json"])
        if name == "right":
            assert result.exit_code == 0, result.output
            continue
        # omega's entry point prints this error's sentence and exits with the protocol code
        assert isinstance(result.exception, SignatureError)
        assert "does not match its signature" in str(result.exception)
        assert exit_code_for(result.exception) == ExitCode.PROTOCOL


def test_omega_sync_every_keeps_syncing_until_sigterm_then_stops_cleanly(
    server: Server, tmp_path: Path
) -> None:
    """The runtime from the command line: one JSON line per sync; SIGTERM cuts the wait
    (the server asked for an hour) and the final status says it stopped cleanly."""
    clock = ManualClock(time.time() - 4 * 3600)  # watched this afternoon: the CLI's brain
    tv = open_brain(tmp_path / "tv", clock)  # runs on the wall clock, whose loops then
    watch(tv, clock, [1, 2])  # have nothing to prune yet
    tv.close()
    command = [sys.executable, "-m", "omega.cli", "sync", str(tmp_path / "tv")]
    command += ["--server", server.base_url, "--every", "0.5", "--json"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    with subprocess.Popen(command, **pipes) as cli:  # type: ignore[call-overload]
        try:
            assert cli.stdout is not None
            first = json.loads(cli.stdout.readline())  # blocks until the first sync is done
            assert first["event"] == "sync" and first["accepted"] == first["pushed"] > 0
            assert first["next_sync_after"] > 60  # so the runtime is now waiting a long time
            cli.send_signal(signal.SIGTERM)
            rest, errors = cli.communicate(timeout=60)
        finally:
            cli.kill()  # a no-op once it has exited
    assert cli.returncode == 0, errors
    final = json.loads(rest)
    assert final["state"] == "stopped" and final["syncs"] == 1 and final["failures"] == 0
    assert final["next_sync_at"] is None
    reopened = open_brain(tmp_path / "tv", clock)
    assert reopened.sync.outbox_size() == 0 and reopened.sync.inflight() is None
    reopened.close()


def test_omega_sync_every_refuses_bad_intervals_in_one_sentence(tmp_path: Path) -> None:
    open_brain(tmp_path / "tv", ManualClock()).close()
    runner = CliRunner()
    for bad in ("0", "-1", "nan", "inf"):
        args = ["sync", str(tmp_path / "tv"), "--server", "http://127.0.0.1:9", "--every", bad]
        result = runner.invoke(_app(), args)
        assert isinstance(result.exception, ConfigError), (bad, result.output)  # usage: exit 2
        assert "--every" in str(result.exception)


def test_omega_sync_refuses_a_pull_budget_past_the_protocols_bound_before_registering(
    tmp_path: Path,
) -> None:
    open_brain(tmp_path / "tv", ManualClock()).close()
    runner = CliRunner()
    for bad in ("0", "99999999999"):
        args = ["sync", str(tmp_path / "tv"), "--server", "http://127.0.0.1:9"]
        result = runner.invoke(_app(), [*args, "--max-pull-bytes", bad])
        assert isinstance(result.exception, ConfigError), (bad, result.output)  # usage: exit 2
        assert "--max-pull-bytes" in str(result.exception) and "4194304" in str(result.exception)


def test_omega_sync_pins_the_helper_key_and_checks_it(tmp_path: Path) -> None:
    from omega.errors import ConfigError, TransportError
    from omega.helper.service import HelperService
    from omega.helper.thread import HelperThread

    tv = open_brain(tmp_path / "tv", ManualClock())
    tv.close()
    sync = ["sync", str(tmp_path / "tv"), "--server", "http://127.0.0.1:9"]
    runner = CliRunner()
    for bad in ("zz", "ab" * 31, ""):
        result = runner.invoke(_app(), [*sync, "--helper-key", bad])
        assert isinstance(result.exception, ConfigError), result.output
        assert "--helper-key" in str(result.exception) and "64 hex digits" in str(result.exception)
    other = "11" * 32
    with HelperThread(HelperService.open(tmp_path / "helper")) as helper:
        result = runner.invoke(_app(), [*sync, "--helper-key", other, "--helper-url", helper.url])
        assert isinstance(result.exception, ConfigError), result.output
        assert "holds another key than --helper-key" in str(result.exception)
        # The key it serves passes the check: the sync then fails on the server (port 9).
        key = helper.service.info().public_key.hex()
        result = runner.invoke(_app(), [*sync, "--helper-key", key, "--helper-url", helper.url])
        assert isinstance(result.exception, TransportError), result.output
        assert "--helper-url" not in str(result.exception)
    nowhere = runner.invoke(_app(), [*sync, "--helper-url", "http://127.0.0.1:9"])
    assert isinstance(nowhere.exception, TransportError), nowhere.output
    assert "--helper-url" in str(nowhere.exception)


def test_omega_sync_comes_through_every_door_and_fails_over(tmp_path: Path) -> None:
    """``--server`` names the door by its scheme — http://, grpc://, h3:// (pinned with
    --quic-pin) — and a comma-separated list is one service at several endpoints: a dead
    first endpoint of any door (refused; a QUIC handshake that never comes) costs the TV
    a failed connection, not the sync."""
    tls = self_signed(tmp_path / "tls")
    data_dir = tmp_path / "constellation"
    server = start_server(
        data_dir,
        OMEGA_GRPC_PORT="0",
        OMEGA_QUIC_PORT="0",
        OMEGA_QUIC_CERT=str(tls.cert),
        OMEGA_QUIC_KEY=str(tls.key),
    )
    try:
        server.publish_codebook()
        grpc_url = "grpc://" + (data_dir / "grpc-address").read_text().strip()
        h3_url = "h3://127.0.0.1:" + (data_dir / "http3-port").read_text().strip()
        with bound_socket(0) as dead, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mute:
            port = dead.getsockname()[1]  # bound, never listening: connections are refused
            mute.bind(("127.0.0.1", 0))  # a UDP port that never answers: no QUIC handshake
            mute_url = f"h3://127.0.0.1:{mute.getsockname()[1]}"
            doors = {
                "http": [server.base_url],
                "grpc": [grpc_url],
                "h3": [h3_url, "--quic-pin", tls.pin],
                "failover": [f"http://127.0.0.1:{port},{grpc_url}"],
                "failover-grpc": [f"grpc://127.0.0.1:{port},{server.base_url}"],
                "failover-h3": [f"{mute_url},{h3_url}", "--quic-pin", tls.pin],
            }
            runner = CliRunner()
            for name, (url, *extra) in doors.items():
                clock = ManualClock()
                tv = open_brain(tmp_path / name, clock)
                watch(tv, clock, [1, 2])
                tv.close()
                args = ["sync", str(tmp_path / name), "--server", url, *extra, "--json"]
                result = runner.invoke(_app(), args)
                assert result.exit_code == 0, (name, result.output)
                report = json.loads(result.output)
                assert report["pushed"] > 0 and report["accepted"] == report["pushed"], name
        wrong_pin = "sha256/" + base64.b64encode(bytes(32)).decode()
        refused = runner.invoke(
            _app(), ["sync", str(tmp_path / "h3"), "--server", h3_url, "--quic-pin", wrong_pin]
        )
        assert refused.exit_code != 0 and "pin" in str(refused.exception)
    finally:
        server.stop()


def test_omega_sync_server_urls_are_checked_before_anything_runs(tmp_path: Path) -> None:
    tv = open_brain(tmp_path / "tv", ManualClock())
    tv.close()
    cases = [
        (["--server", "grpc://127.0.0.1"], "--server"),  # no port
        (["--server", "h3://127.0.0.1:4433/x"], "--server"),
        (["--server", "http://a,,http://b"], "--server"),
        (["--server", "http://a", "--quic-pin", "sha256/AAAA"], "--quic-pin"),
        (["--server", "http://a", "--quic-ca", str(tmp_path / "none.pem")], "--quic-ca"),
    ]
    for extra, flag in cases:
        result = CliRunner().invoke(_app(), ["sync", str(tmp_path / "tv"), *extra])
        assert isinstance(result.exception, ConfigError), (extra, result.exception)
        assert flag in str(result.exception), (extra, str(result.exception))
        assert exit_code_for(result.exception) == ExitCode.USAGE
