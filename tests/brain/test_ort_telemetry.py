"""A TV process that loads the brain's model leaves no onnxruntime telemetry behind: no
device id or event store under its home, no session file in its temporary directory
(onnxruntime 1.32 writes all three at import unless ORT_DISABLE_TELEMETRY is set first;
see omega.brain._ort)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TV = """
from omega.brain import Brain
from omega.brain.embedder import Embedder
from omega.clock import ManualClock
import sys

vector = Embedder.load().embed_one("Heat (1995)")
assert vector.shape == (384,)
with Brain.open(sys.argv[1], clock=ManualClock(1_700_000_000.0)) as brain:
    pass
"""


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _run(tmp_path: Path, env: dict[str, str]) -> tuple[list[str], list[str]]:
    home, temp = tmp_path / "home", tmp_path / "temp"
    home.mkdir()
    temp.mkdir()
    cache = os.environ.get("OMEGA_CACHE", str(Path.home() / ".cache" / "omega"))
    env = {**env, "HOME": str(home), "TMPDIR": str(temp), "OMEGA_CACHE": cache}
    done = subprocess.run(
        [sys.executable, "-c", TV, str(tmp_path / "tv")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return _files(home), _files(temp)


def test_loading_the_model_leaves_no_telemetry(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    home, temp = _run(tmp_path, env)
    assert not [f for f in home if "Microsoft" in f or "onnxruntime" in f], home
    assert ".ses" not in temp, temp
