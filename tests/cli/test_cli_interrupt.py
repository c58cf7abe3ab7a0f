"""A long command stopped by Ctrl-C or SIGTERM exits 130 with one sentence (it used to exit
0, silently: Typer returns the code instead of exiting with it), and ``omega simulate``
removes its temporary brains on the way out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

OMEGA = [sys.executable, "-m", "omega.cli"]


@pytest.fixture
def movielens(tmp_path: Path) -> Path:
    """A small ml-latest directory: 40 viewers, 60 titles, 30 ratings each."""
    root = tmp_path / "ml"
    root.mkdir()
    titles = [f"{i},Movie {i} (2001),Drama" for i in range(1, 61)]
    (root / "movies.csv").write_text("movieId,title,genres\n" + "\n".join(titles) + "\n")
    rows = [
        f"{user},{(user * 7 + step) % 60 + 1},4.0,{1_000_000 + 3600 * (user + 40 * step)}"
        for user in range(1, 41)
        for step in range(30)
    ]
    (root / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_replay_exits_130_and_leaves_no_brains(
    movielens: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "OMEGA_CACHE": str(tmp_path / "cache")}
    args = ["simulate", "--dataset", str(movielens), "--no-als", "--json"]
    with subprocess.Popen(
        [*OMEGA, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as run:
        deadline = time.monotonic() + 120
        while not any(temp.glob("omega-sim-*")):  # the replay's brains are on their way
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the replay never started"
            time.sleep(0.05)
        run.send_signal(sig)
        out, err = run.communicate(timeout=120)
    assert run.returncode == 130, err
    assert out == ""  # no result for an unfinished run
    assert json.loads(err.strip().splitlines()[-1]) == {
        "error": "interrupted",
        "code": 130,
        "kind": "interrupted",
    }
    assert list(temp.glob("omega-sim-*")) == []


def test_an_interrupted_dask_replay_stops_its_workers_before_removing_their_brains(
    movielens: Path, tmp_path: Path
) -> None:
    """The engine's workers write the brains until the cluster is closed: the temporary
    directory goes after it (removed first, a worker still in its task wrote into it,
    and could make it again)."""
    pytest.importorskip("distributed")
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "OMEGA_CACHE": str(tmp_path / "cache")}
    args = ["simulate", "--dataset", str(movielens), "--no-als", "--json"]
    args += ["--engine", "dask", "--engine-workers", "1"]
    with subprocess.Popen(
        [*OMEGA, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as run:
        deadline = time.monotonic() + 180
        # written once every brain is made, just before the first tasks go to the workers
        while not any(temp.glob("omega-sim-*/local-only/catalog.pickle")):
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the replay never reached the engine"
            time.sleep(0.05)
        workers = [
            child
            for child in psutil.Process(run.pid).children(recursive=True)
            if "spawn_main" in " ".join(child.cmdline())
        ]
        assert workers  # the local cluster's worker processes
        (brains,) = temp.glob("omega-sim-*")
        run.send_signal(signal.SIGTERM)
        while brains.exists() and run.poll() is None:
            time.sleep(0.005)
        still = [w.pid for w in workers if _alive(w)]
        out, err = run.communicate(timeout=120)
    assert run.returncode == 130, err
    assert out == ""
    assert still == []  # no worker left when the directory went
    assert list(temp.glob("omega-sim-*")) == []


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
