"""`omega serve` / `omega worker` refuse a helper that would never count their batches,
and a setting that does not parse is one sentence, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from omega.cli.helper import check_helper
from omega.errors import ConfigError
from omega.helper.service import HelperConfig, HelperService
from omega.helper.thread import HelperThread


@pytest.fixture
def strict_helper(tmp_path: Path) -> Iterator[HelperThread]:
    service = HelperService.open(tmp_path / "helper", HelperConfig(min_batch=800))
    with HelperThread(service) as running:
        yield running


def test_a_helper_that_wants_bigger_batches_is_refused(strict_helper: HelperThread) -> None:
    with pytest.raises(ConfigError, match="at least 800 reports"):
        check_helper(strict_helper.url, min_batch=500, noise_epsilon=4.0)
    check_helper(strict_helper.url, min_batch=800, noise_epsilon=4.0)  # agrees: starts


def test_an_unreachable_helper_only_warns(capsys: pytest.CaptureFixture[str]) -> None:
    check_helper("http://127.0.0.1:9", min_batch=500, noise_epsilon=4.0)
    assert "did not answer" in capsys.readouterr().err  # rounds keep the reports queued
    check_helper(None, min_batch=500, noise_epsilon=4.0)  # no helper: nothing to check
    assert capsys.readouterr().err == ""


def _worker(
    db: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "omega.cli", "worker", "--once", "--db", f"sqlite:///{db}"]
    return subprocess.run([*command, *extra], capture_output=True, text=True, timeout=120, env=env)


def test_the_worker_says_which_setting_to_change(
    strict_helper: HelperThread, tmp_path: Path
) -> None:
    secret = strict_helper.service.store.parent / "aggregation-secret"
    done = _worker(
        tmp_path / "c.db",
        "--helper-url",
        strict_helper.url,
        "--helper-secret-file",
        str(secret),
    )
    assert done.returncode == 2, done.stderr
    assert "OMEGA_SHARE_MIN_BATCH" in done.stderr and "Traceback" not in done.stderr


def test_a_setting_that_does_not_parse_is_one_sentence(tmp_path: Path) -> None:
    done = _worker(tmp_path / "c.db", env={**os.environ, "OMEGA_SHARE_MIN_BATCH": "many"})
    assert done.returncode == 2
    assert "OMEGA_SHARE_MIN_BATCH" in done.stderr and "Traceback" not in done.stderr
