from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import typer
from _fed_helpers import codebook, pattern, push
from typer.testing import CliRunner

from omega.cli import worker as worker_cli
from omega.errors import InputError
from omega.storage import open_storage


def worker_app() -> typer.Typer:
    app = typer.Typer()
    app.command("noop")(lambda: None)  # a group, as in omega's main app
    worker_cli.register(app)
    return app


def seeded_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/constellation.db"
    store = open_storage(url)
    try:
        store.put_codebook(codebook())
        for i in range(3):
            push(store, f"v{i}", added=[pattern((1, 2))])
    finally:
        store.close()
    return url


def test_worker_once_json(tmp_path: Path) -> None:
    url = seeded_db(tmp_path)
    result = CliRunner().invoke(worker_app(), ["worker", "--db", url, "--once", "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert (row["status"], row["version"], row["applied"], row["released"]) == (
        "released",
        1,
        3,
        1,
    )
    again = CliRunner().invoke(worker_app(), ["worker", "--db", url, "--once", "--json"])
    assert json.loads(again.stdout)["status"] == "unchanged"


def test_worker_once_without_a_codebook_says_how_to_publish_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/constellation.db"
    open_storage(url).close()  # a fresh server's database: no codebook yet
    result = CliRunner().invoke(worker_app(), ["worker", "--db", url, "--once", "--json"])
    assert json.loads(result.stdout)["status"] == "no_codebook"
    assert isinstance(result.exception, InputError)  # `omega` exits 3 on it
    assert "omega admin codebook publish --catalog" in str(result.exception)


def test_worker_rejects_bad_interval(tmp_path: Path) -> None:
    url = seeded_db(tmp_path)
    result = CliRunner().invoke(worker_app(), ["worker", "--db", url, "--interval", "0"])
    assert result.exit_code != 0


def test_worker_loop_stops_on_sigterm(tmp_path: Path) -> None:
    url = seeded_db(tmp_path)
    script = textwrap.dedent(
        f"""
        import typer
        from omega.cli import worker
        app = typer.Typer()
        app.command("noop")(lambda: None)
        worker.register(app)
        app(["worker", "--db", {url!r}, "--interval", "0.2", "--json"])
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())  # one round done: the loop is running
        assert first["status"] == "released"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    for line in out.splitlines():
        assert json.loads(line)["status"] == "unchanged"


def test_worker_class_runs_rounds_until_stopped(tmp_path: Path) -> None:
    import threading

    from omega.clock import ManualClock
    from omega.federation import FederationConfig, Worker

    store = open_storage(seeded_db(tmp_path))
    stop = threading.Event()
    seen: list[str] = []
    clock = ManualClock(1_750_000_000.0)

    def on_round(result) -> None:
        seen.append(result.status)
        clock.advance(60)
        if len(seen) == 3:
            stop.set()

    try:
        Worker(
            store,
            FederationConfig(),
            worker_id="t",
            interval_s=0.01,
            clock=clock,
            on_round=on_round,
        ).run(stop)
    finally:
        store.close()
    assert seen == ["released", "unchanged", "unchanged"]
