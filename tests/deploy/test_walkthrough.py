"""docs/deploy.md's walkthrough from empty, run as an operator and three TVs would: real
``omega`` processes only (a helper, a constellation on free loopback ports, the admin
commands, TV brains syncing with the helper's key pinned), down to the TVs holding the
release the round made.

Every ``omega`` line of the walkthrough's shell block is also parsed as the CLI parses it,
so the page cannot name an option the CLI lacks."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
CATALOG = """item_id,title,genres,year
1,Alien,Horror|Sci-Fi,1979
2,Aliens,Action|Horror|Sci-Fi,1986
3,The Thing,Horror|Sci-Fi,1982
4,Predator,Action|Sci-Fi,1987
5,Heat,Crime|Thriller,1995
6,Se7en,Crime|Thriller,1995
7,Fargo,Crime|Drama,1996
8,The Usual Suspects,Crime|Thriller,1995
9,Toy Story,Animation|Children|Comedy,1995
10,Finding Nemo,Animation|Children|Comedy,2003
11,Shrek,Animation|Children|Comedy,2001
12,Up,Animation|Children|Drama,2009
"""
TVS = 3  # the fewest viewers a release needs (FederationConfig.min_viewers)


def omega(*args: str, cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``omega ARGS --json`` in a new process; its JSON answer (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-m", "omega.cli", *args, "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, f"omega {' '.join(args)}: {done.stderr}"
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


@contextmanager
def running(args: Sequence[str], *, cwd: Path, name: str, **env: str) -> Iterator[str]:
    """``omega ARGS --port 0`` until interrupted; yields the URL uvicorn says it bound."""
    log = cwd / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "omega.cli", *args, "--host", "127.0.0.1", "--port", "0"],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    try:
        yield _bound_url(process, log)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _bound_url(process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        found = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", log.read_text())
        if found:
            return found.group(1)
        assert process.poll() is None, log.read_text()
        time.sleep(0.1)
    raise AssertionError(f"no server after 90 s: {log.read_text()}")


def _helper_batches(helper: str) -> float:
    """Batches the helper aggregated with the constellation (its /metrics)."""
    text = httpx.get(helper + "/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("omega_helper_batches_total") and 'outcome="aggregated"' in line
    )


@pytest.mark.slow
def test_a_deployment_from_empty_to_tvs_holding_a_release(tmp_path: Path) -> None:
    (tmp_path / "catalog.csv").write_text(CATALOG)
    at = {"cwd": tmp_path}
    helper_args = ["helper", "serve", "--data-dir", "helper", "--min-batch", str(TVS)]
    with running(helper_args, name="helper", **at) as helper:
        serve = [
            "serve", "--data-dir", "data", "--federation-interval", "0",
            "--helper-url", helper, "--helper-secret-file", "helper/aggregation-secret",
        ]  # fmt: skip
        with running(serve, name="serve", OMEGA_SHARE_MIN_BATCH=str(TVS), **at) as server:
            _walk(tmp_path, server, helper)


def _walk(tmp_path: Path, server: str, helper: str) -> None:
    at = {"cwd": tmp_path}
    admin = ["--server", server, "--admin-token-file", "data/admin-token"]
    assert omega("admin", "stats", *admin, **at)["version"] == 0  # empty
    maker = omega("attest", "keygen", "acme", "2026", "--out", "acme.pem", **at)
    omega("admin", "manufacturers", "add", "acme", "2026",
          "--public-key", maker["public_key"], *admin, **at)  # fmt: skip
    published = omega(
        "admin", "codebook", "publish", "--catalog", "catalog.csv", "--cells", "4", *admin, **at
    )
    assert (published["k"], published["items"]) == (4, 12)
    assert omega("admin", "codebook", "show", *admin, **at)["sequence"] == published["sequence"]
    helper_key = omega("helper", "key", "--data-dir", "helper", **at)["public_key"]

    def sync(tv: str) -> dict[str, Any]:
        return omega(
            "sync", tv, "--server", server, "--helper-key", helper_key,
            "--certificate", f"{tv}-id/device.cert", "--device-key", f"{tv}-id/device.key", **at,
        )  # fmt: skip

    tvs = [f"tv{n}" for n in range(1, TVS + 1)]
    for n, tv in enumerate(tvs, 1):
        omega("attest", "device", f"SN-{n}", "--key", "acme.pem", "--manufacturer", "acme",
              "--key-id", "2026", "--model", "X55", "--out", f"{tv}-id", **at)  # fmt: skip
        omega("brain", "init", tv, **at)
        omega("brain", "catalog-import", tv, "catalog.csv", **at)
        for item in ("1", "2", "3"):  # a taste for horror and sci-fi
            omega("brain", "track", tv, "view", item, "--fraction", "0.95", **at)
        first = sync(tv)
        assert first["accepted"] > 0 and first["version"] == 0
    # The TVs adopted the published codebook at their first sync.
    assert omega("brain", "stats", "tv1", **at)["codebook_id"] == published["codebook_id"]

    ran = omega("admin", "rounds", "run", "--wait", *admin, **at)
    assert ran["status"] == "released" and ran["reports"] >= TVS
    assert _helper_batches(helper) >= 1  # the TVs' reports were counted with the helper
    stats = omega("admin", "stats", *admin, **at)
    assert stats["version"] == ran["version"] >= 1 and stats["released_patterns"] >= 1
    assert (stats["viewers"], stats["pending_contributions"]) == (TVS, 0)
    release = omega("admin", "release", *admin, **at)
    why = omega("admin", "consensus", release["patterns"][0]["id"], *admin, **at)
    assert why["verdict"] == "released" and why["live"]["voters"] == TVS

    for tv in tvs:
        pulled = sync(tv)
        assert pulled["pulled"] == stats["released_patterns"]
        assert pulled["version"] == stats["version"]
        brain = omega("brain", "stats", tv, **at)
        assert brain["release_version"] == stats["version"]
        assert brain["collective_patterns"] > 0


def _walkthrough_commands() -> list[list[str]]:
    """The ``omega`` command lines of docs/deploy.md's walkthrough block."""
    text = DOCS.read_text()
    section = text.split("## From empty: a walkthrough", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", block)
    # Shell substitutions become a placeholder value; a pipe ends the command.
    plain = re.sub(r"\$\([^)]*\)|\$\w+", "x", joined)
    lines = [line.strip().split(" | ")[0] for line in plain.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("omega ")]


def test_the_walkthrough_names_only_options_the_cli_takes(
    parse_cli: Callable[[Sequence[str]], dict[str, Any]],
) -> None:
    commands = _walkthrough_commands()
    names = {" ".join(c[:2]) for c in commands}
    for step in ("admin codebook", "admin rounds", "admin stats", "sync", "helper serve"):
        assert any(name.startswith(step) for name in names), step
    for command in commands:
        parse_cli(command)
