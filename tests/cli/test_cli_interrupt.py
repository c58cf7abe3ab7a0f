"""A long command stopped by Ctrl-C or SIGTERM exits 130 with one sentence (it used to exit
0, silently: Typer returns the code instead of exiting with it), and ``omega simulate``
removes its temporary brains on the way out."""

from __future__ import annotations

import asyncio
import contextlib
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


def test_ctrl_c_stops_the_second_process_even_while_it_starts(
    movielens: Path, tmp_path: Path
) -> None:
    """Ctrl-C reaches the whole process group, the second process (``--processes 2``)
    too, here while it is still importing and reading what to replay: the run exits 130
    all the same, leaving no process and no brains (it used to hang, this process
    waiting forever for the dead child to read its parts)."""
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "OMEGA_CACHE": str(tmp_path / "cache")}
    args = ["simulate", "--dataset", str(movielens), "--no-als", "--json", "--processes", "2"]
    with subprocess.Popen(
        [*OMEGA, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, as a terminal's
    ) as run:
        deadline = time.monotonic() + 120
        while not (children := _second_process(run.pid)):
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the second process never started"
            time.sleep(0.01)
        os.killpg(run.pid, signal.SIGINT)
        try:
            out, err = run.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
            pytest.fail("the interrupted run hung")
    assert run.returncode == 130, err
    assert out == ""
    assert json.loads(err.strip().splitlines()[-1])["kind"] == "interrupted"
    assert "Traceback" not in err  # the second process ignores Ctrl-C: it is stopped
    assert [c.pid for c in children if _alive(c)] == []
    assert list(temp.glob("omega-sim-*")) == []


def _second_process(pid: int) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
    return found


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


def test_sigterm_cancels_the_replay_as_ctrl_c_does() -> None:
    """SIGTERM goes through asyncio.run's own Ctrl-C handler: every task is cancelled and
    unwinds. Raised as KeyboardInterrupt wherever this thread was, it stopped the task
    running then mid-step (with two fleets replaying at once, often not the main one) —
    the others, and their worker threads, left behind, and the run hung on its way out."""
    from omega.cli.simulate import _interrupt

    unwound: list[str] = []

    async def replay() -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # lands in this task, not the main one
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            unwound.append("cancelled")
            raise

    async def main() -> None:
        fleet = asyncio.ensure_future(replay())
        await asyncio.sleep(0)  # the fleet's task runs now
        await fleet

    # Ctrl-C's own handler, as in a terminal (a shell's background job ignores SIGINT)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(main())
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    assert unwound == ["cancelled"]
