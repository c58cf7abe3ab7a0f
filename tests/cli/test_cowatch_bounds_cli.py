"""The co-watch per-TV bound: the constellation (``omega serve``), the helper (``omega
helper serve``) and the TVs agree on their defaults, a bad value is one sentence naming
the flag or variable, and ``omega serve`` refuses a helper that would refuse its TVs."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from omega.brain import BrainConfig
from omega.cli import helper as helper_cli
from omega.cli.helper import check_helper
from omega.cli.main import app
from omega.errors import ConfigError
from omega.helper import CowatchConfig, CowatchDesk, HelperConfig, HelperService, HelperThread

WEEK = 7 * 86_400.0


def test_the_helper_command_defaults_to_the_tvs_bound() -> None:
    default = inspect.signature(helper_cli.serve).parameters["cowatch_per_epoch"].default
    assert default == BrainConfig().cowatch_pairs_per_epoch == 128


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("serve", "--cowatch-per-epoch", "0"), "'--cowatch-per-epoch'"),
        (("serve", "--cowatch-epoch-days", "0"), "'--cowatch-epoch-days'"),
        (("helper", "serve", "--cowatch-per-epoch", "1001"), "'--cowatch-per-epoch'"),
    ],
)
def test_a_bad_bound_names_the_flag(args: tuple[str, ...], flag: str) -> None:
    done = CliRunner().invoke(app, list(args))
    assert done.exit_code == 2
    assert flag in done.output


def test_a_bad_bound_in_the_environment_is_one_sentence(tmp_path: Path) -> None:
    env = {**os.environ, "OMEGA_COWATCH_PER_EPOCH": "0", "OMEGA_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "omega.cli", "serve", "--port", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2, done.stderr
    assert "OMEGA_COWATCH_PER_EPOCH" in done.stderr and "Traceback" not in done.stderr


@pytest.fixture
def helper_at_8(tmp_path: Path) -> Iterator[HelperThread]:
    """A helper whose co-watch desk still has the old bound of 8 a week."""
    service = HelperService.open(tmp_path / "helper", HelperConfig())
    desk = CowatchDesk(tmp_path / "helper", service.secret, CowatchConfig(per_epoch=8))
    with HelperThread(service, cowatch=desk) as running:
        yield running


def test_serve_refuses_a_helper_that_would_refuse_its_tvs(
    helper_at_8: HelperThread, capsys: pytest.CaptureFixture[str]
) -> None:
    def check(cowatch: tuple[int, float] | None) -> None:
        check_helper(helper_at_8.url, min_batch=500, noise_epsilon=4.0, cowatch=cowatch)

    with pytest.raises(ConfigError, match="accepts 8 co-watch reports per TV per 7-day epoch"):
        check((128, WEEK))
    with pytest.raises(ConfigError, match="--cowatch-per-epoch"):
        check((8, 86_400.0))  # the helper's epoch is longer: 7 days' worth in one of its
    check((8, WEEK))  # agrees: starts
    assert capsys.readouterr().err == ""
    check((4, WEEK))  # stricter than the helper: its TVs are never refused
    assert "keep them equal" in capsys.readouterr().err
    check(None)  # co-watch off here
