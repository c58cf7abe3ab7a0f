"""The library as C programs use it (their own process, the interpreter started by the
library): a runtime that cannot start is OMEGA_E_MODEL with the reason, never a crash
or zeros; two threads on one brain; a hundred opens and closes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _sdk_world import CATALOG, run, synthetic_brain


@pytest.mark.parametrize(
    ("env", "sentence"),
    [
        (
            {"OMEGA_PYTHONHOME": "/nonexistent"},
            "could not start its Python runtime: the interpreter did not start",
        ),
        (
            {"OMEGA_PYTHONPATH": "{shadow}"},
            "could not load its Python package (ImportError: a broken install)",
        ),
        (
            {"OMEGA_PYTHONPATH": "{backend}"},
            "cannot import cffi's _cffi_backend: ImportError: no backend here",
        ),
    ],
    ids=["no-python-home", "omega-fails-to-import", "no-cffi-backend"],
)
def test_a_runtime_that_cannot_start_is_a_model_error_with_the_reason(
    tv: Path, tmp_path: Path, env: dict[str, str], sentence: str
) -> None:
    shadow, backend = tmp_path / "shadow", tmp_path / "backend"
    (shadow / "omega").mkdir(parents=True)
    (shadow / "omega" / "__init__.py").write_text("raise ImportError('a broken install')\n")
    backend.mkdir()
    (backend / "_cffi_backend.py").write_text("raise ImportError('no backend here')\n")
    values = {k: v.format(shadow=shadow, backend=backend) for k, v in env.items()}
    done = run([str(tv), str(tmp_path / "brain"), str(CATALOG)], **values)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "omega_config_new(config) failed: OMEGA_E_MODEL: " in done.stderr
    assert sentence in done.stderr
    assert "initialization code failed" not in done.stderr
    assert not (tmp_path / "brain").exists()


def test_two_threads_recommend_and_track_one_brain_at_once(stress: Path, tmp_path: Path) -> None:
    directory = synthetic_brain(tmp_path / "brain", 500)
    done = run([str(stress), "threads", str(directory), "400"])
    assert done.returncode == 0, done.stdout + done.stderr
    counts = json.loads(done.stdout)
    assert counts["recommend_ok"] == counts["track_ok"] == 400
    assert counts["close"] == "OMEGA_OK"


def test_a_hundred_opens_and_closes_hold_memory_steady(stress: Path, tmp_path: Path) -> None:
    """A brain of 5,000 titles holds ~15 MB (vectors, index, caches): a close that left
    one behind would add that each cycle (1.5 GB over 100, measured with closed brains
    kept referenced). The growth from cycle 10 to 100 must stay under half of one."""
    directory = synthetic_brain(tmp_path / "brain", 5_000)
    done = run([str(stress), "cycles", str(directory), "100"])
    assert done.returncode == 0, done.stdout + done.stderr
    rss_kb = json.loads(done.stdout)["rss_kb"]
    assert len(rss_kb) == 100
    growth_mb = (rss_kb[99] - rss_kb[9]) / 1024
    assert growth_mb < 7.5, f"RSS grew {growth_mb:.1f} MB from cycle 10 to 100: {rss_kb}"
