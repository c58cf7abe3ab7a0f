"""The ``omega`` command as a user meets it: help, errors as sentences and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

OMEGA = [sys.executable, "-m", "omega.cli"]


def omega(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OMEGA, *args], capture_output=True, text=True, timeout=300, env=env)


def test_help_lists_every_command() -> None:
    done = omega("--help")
    assert done.returncode == 0
    commands = ("brain", "bench", "demo", "simulate", "serve", "worker", "helper", "sync", "admin")
    for command in (*commands, "attest", "mcp", "baselines"):
        assert command in done.stdout


def test_version_is_the_installed_package_version() -> None:
    from importlib.metadata import version

    done = omega("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"omega {version('exogenesis-omega')}"


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("brain", "recommend", "/nonexistent/omega-brain"), 2, "brain init"),
        (("brain", "recommend", "/nonexistent/omega-brain", "-k", "abc"), 2, "valid integer"),
        (("simulate",), 2, "--dataset"),
        (("simulate", "--dataset", "/nonexistent/ml"), 3, "/nonexistent/ml"),
        (("simulate", "--dataset", "/nonexistent/ml", "--report-budget", "-1"), 2, "≥ 0"),
        (("simulate", "--dataset", "/nonexistent/ml", "--cold-start", "-1"), 2, "--cold-start"),
        (("demo", "--viewers", "1"), 2, "--viewers ≥ 3"),
        (("simulate", "--dataset", "/nonexistent/ml", "--reports", "both"), 2, "'shared' or"),
        (("simulate", "--dataset", "/nonexistent/ml", "--share-min-batch", "0"), 2, "1..2500"),
        (("simulate", "--dataset", "/nonexistent/ml", "--cowatch", "bogus"), 2, "must be 'off'"),
        (("simulate", "--dataset", "/x", "--cowatch-epsilon", "-1"), 2, "--cowatch-epsilon"),
        (("simulate", "--dataset", "/x", "--cowatch-attack", "lie"), 2, "--cowatch-attack"),
        (("simulate", "--dataset", "/x", "--processes", "3"), 2, "--processes must be 1 or 2"),
        (("simulate", "--dataset", "/x", "--cowatch-spread", "150"), 2, "--cowatch-spread"),
        (("helper", "serve", "--noise-epsilon", "30"), 2, "'--noise-epsilon'"),
        (("worker", "--once", "--helper-url", "http://127.0.0.1:9"), 2, "secret file"),
        (("serve", "--port", "99999"), 2, "--port"),
        (("serve", "--db", "mysql://x", "--data-dir", "/nonexistent/omega"), 2, "mysql://x"),
        (("serve", "--data-dir", "/etc/passwd/x"), 2, "data directory"),
        (("helper", "serve", "--port", "-1", "--data-dir", "/nonexistent/helper"), 2, "--port"),
    ],
)
def test_bad_input_is_one_sentence_and_an_exit_code(
    args: tuple[str, ...], code: int, words: str
) -> None:
    done = omega(*args)
    assert done.returncode == code, done.stderr
    assert words in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_helper_key_prints_the_public_key_and_keeps_it(tmp_path: Path) -> None:
    first = omega("helper", "key", "--data-dir", str(tmp_path / "h"), "--json")
    assert first.returncode == 0, first.stderr
    key = json.loads(first.stdout)["public_key"]
    assert len(bytes.fromhex(key)) == 32
    again = omega("helper", "key", "--data-dir", str(tmp_path / "h"), "--json")
    assert json.loads(again.stdout)["public_key"] == key
    assert (tmp_path / "h" / "aggregation-secret").stat().st_mode & 0o077 == 0


def test_brain_commands_end_to_end(tmp_path: Path) -> None:
    brain = tmp_path / "tv"
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(
        "item_id,title,genres,year,runtime_min\n"
        + "\n".join(f"m{n},Space Saga {n},Sci-Fi|Adventure,{1990 + n},{90 + n}" for n in range(8))
        + "\n"
        + "\n".join(f"d{n},Kitchen Stories {n},Documentary,{2000 + n},50" for n in range(8))
        + "\n"
    )
    assert omega("brain", "init", str(brain)).returncode == 0
    imported = json.loads(
        omega("brain", "catalog-import", str(brain), str(catalog), "--json").stdout
    )
    assert imported["items"] == 16
    for n in range(4):
        tracked = omega("brain", "track", str(brain), "view", f"m{n}", "--fraction", "1", "--json")
        assert json.loads(tracked.stdout)["success"] is True
    bad = omega("brain", "track", str(brain), "view", "m1", "--fraction", "1.5")
    assert bad.returncode == 2  # a bad option value: a usage error
    assert "--fraction must be within [0, 1]" in bad.stderr
    recs = json.loads(omega("brain", "recommend", str(brain), "-k", "3", "--json").stdout)
    ids = [r["item_id"] for r in recs["recommendations"]]
    assert len(ids) == 3
    assert not {"m0", "m1", "m2", "m3"} & set(ids)
    assert all(r["reason"] for r in recs["recommendations"])
    stats = json.loads(omega("brain", "stats", str(brain), "--json").stdout)
    assert stats["episodes"] == 4
    exported = json.loads(omega("brain", "export", str(brain), "--json").stdout)
    assert all(p["support"] >= 3 for p in exported["patterns"])


def test_the_simulators_cowatch_epsilon_defaults_to_the_brains() -> None:
    """The CLI spells the default out (importing the brain at start-up costs every command
    ~0.4 s); the fleet and the brain share one constant."""
    import inspect

    from omega.brain import BrainConfig
    from omega.brain.config import COWATCH_EPSILON
    from omega.cli.simulate import simulate
    from omega.sim.fleet import FleetConfig

    default = inspect.signature(simulate).parameters["cowatch_epsilon"].default
    assert default == COWATCH_EPSILON == BrainConfig().cowatch_epsilon
    assert FleetConfig().cowatch_epsilon == COWATCH_EPSILON


def test_a_command_that_exits_with_a_code_exits_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """``raise typer.Exit(1)`` (what ``omega bench soak`` does when the fleet lost data)
    must reach the shell: outside standalone mode Typer returns the code instead."""
    import typer

    from omega.cli import main

    failing = typer.Typer()

    @failing.command()
    def soak() -> None:
        raise typer.Exit(1)

    @failing.command()
    def fine() -> None:
        return None

    monkeypatch.setattr(main, "app", failing)
    monkeypatch.setattr(sys, "argv", ["omega", "soak"])
    with pytest.raises(SystemExit) as exited:
        main.run()
    assert exited.value.code == 1
    monkeypatch.setattr(sys, "argv", ["omega", "fine"])
    main.run()  # returns: exit 0
