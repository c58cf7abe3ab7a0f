"""``omega sync DIR --server URL``: one sync from the command line, against a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import typer
from _sync_world import Server, open_brain, watch
from typer.testing import CliRunner

from omega.cli import sync as sync_cli
from omega.clock import ManualClock


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
    ]
    for args, code in cases:
        done = subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert "error:" in done.stderr and "Traceback" not in done.stderr
