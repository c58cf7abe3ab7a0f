"""Central DP on released co-watch counts, as an operator sets it: a bad ε or δ is one
sentence naming the flag (or variable) and exit 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from omega.errors import ConfigError
from omega.federation.cowatch_dp import CowatchPrivacy

PRIVATE = ("simulate", "--dataset", "/nonexistent/ml", "--cowatch", "private")


def _omega(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "omega.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((*PRIVATE, "--cowatch-dp-epsilon", "-1"), "--cowatch-dp-epsilon must be ≥ 0"),
        ((*PRIVATE, "--cowatch-dp-epsilon", "4", "--cowatch-dp-delta", "0"), "--cowatch-dp-delta"),
        ((*PRIVATE, "--cowatch-dp-delta", "1.5"), "--cowatch-dp-delta must be between 0 and 1"),
        ((*PRIVATE, "--cowatch-dp-epsilon", "1e-9"), "give a larger ε or δ"),
        (("simulate", "--dataset", "/x", "--cowatch-dp-epsilon", "4"), "needs --cowatch private"),
        (("serve", "--cowatch-dp-epsilon", "-1"), "'--cowatch-dp-epsilon'"),
        (("serve", "--cowatch-dp-delta", "1"), "--cowatch-dp-delta must be between 0 and 1"),
        (("serve", "--cowatch-dp-delta", "0"), "--cowatch-dp-delta must be between 0 and 1"),
        (("serve", "--cowatch-spread", "101"), "'--cowatch-spread'"),
    ],
)
def test_a_bad_setting_names_the_flag(args: tuple[str, ...], words: str) -> None:
    done = _omega(*args)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_a_bad_setting_in_the_environment_names_the_variable(tmp_path: Path) -> None:
    env = {**os.environ, "OMEGA_COWATCH_DP_DELTA": "2", "OMEGA_DATA_DIR": str(tmp_path)}
    done = _omega("serve", "--port", "0", env=env)
    assert done.returncode == 2, done.stderr
    assert "OMEGA_COWATCH_DP_DELTA" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("epsilon", "delta", "words"),
    [
        (-0.5, 1e-6, "--cowatch-dp-epsilon"),
        (float("nan"), 1e-6, "--cowatch-dp-epsilon"),
        (0.0, 1e-6, "ε > 0"),
        (4.0, 1.0, "--cowatch-dp-delta"),
        (4.0, -1e-6, "--cowatch-dp-delta"),
    ],
)
def test_the_mechanism_refuses_what_it_cannot_prove(
    epsilon: float, delta: float, words: str
) -> None:
    with pytest.raises(ConfigError, match=words):
        CowatchPrivacy(epsilon, delta)


def test_serve_refuses_an_epsilon_no_threshold_can_prove_before_it_listens(
    tmp_path: Path,
) -> None:
    done = _omega(
        "serve", "--port", "0", "--data-dir", str(tmp_path), "--cowatch-dp-epsilon", "1e-9"
    )
    assert done.returncode == 2, done.stderr
    assert "--cowatch-dp-epsilon 1e-09 with --cowatch-dp-delta 1e-06" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (
            ("--cowatch-dp-epsilon", "4"),
            {},
            "--cowatch-dp-epsilon 4 has no effect without a helper",
        ),
        (
            (),
            {"OMEGA_COWATCH_DP_EPSILON": "4"},
            "OMEGA_COWATCH_DP_EPSILON 4 has no effect without a helper",
        ),
        (
            ("--helper-url", "http://127.0.0.1:9", "--cowatch-dp-epsilon", "4"),
            {"OMEGA_COWATCH_THRESHOLD": "0"},
            "--cowatch-dp-epsilon 4 has no effect with co-watch off (OMEGA_COWATCH_THRESHOLD=0)",
        ),
        (
            ("--cowatch-dp-delta", "1e-6"),
            {},
            "--cowatch-dp-delta has no effect while central DP is off",
        ),
        (
            (),
            {"OMEGA_COWATCH_DP_DELTA": "1e-6"},
            "OMEGA_COWATCH_DP_DELTA has no effect while central DP is off: give "
            "OMEGA_COWATCH_DP_EPSILON above 0 too",
        ),
        (  # the settings read a variable in any case, and so does the check
            (),
            {"omega_cowatch_dp_delta": "1e-6"},
            "OMEGA_COWATCH_DP_DELTA has no effect while central DP is off",
        ),
        (
            ("--cowatch-spread", "4"),
            {},
            "--cowatch-spread 4 has no effect without the co-watch step of rounds",
        ),
        (
            ("--helper-url", "http://127.0.0.1:9"),
            {"OMEGA_COWATCH_SPREAD": "4", "OMEGA_COWATCH_THRESHOLD": "0"},
            "OMEGA_COWATCH_SPREAD 4 has no effect without the co-watch step of rounds",
        ),
    ],
)
def test_serve_refuses_dp_settings_it_would_ignore(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], words: str
) -> None:
    """Central DP acts on the co-watch step of rounds, which runs only with a helper and
    a threshold above 0: a server that would silently ignore ε says so and stops."""
    environment = {**os.environ, "OMEGA_DATA_DIR": str(tmp_path), **env}
    done = _omega("serve", "--port", "0", *args, env=environment)
    assert done.returncode == 2, done.stderr
    assert words in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr


def test_serve_names_the_variable_that_set_an_epsilon_no_threshold_can_prove(
    tmp_path: Path,
) -> None:
    """ε (and δ) set by the environment are named as such: there is no flag to change."""
    env = {**os.environ, "OMEGA_DATA_DIR": str(tmp_path), "OMEGA_COWATCH_DP_EPSILON": "1e-9"}
    done = _omega("serve", "--port", "0", env=env)
    assert done.returncode == 2, done.stderr
    said = " ".join(done.stderr.split())
    assert "OMEGA_COWATCH_DP_EPSILON 1e-09 with --cowatch-dp-delta 1e-06" in said
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("helper", "env", "words"),
    [
        (
            True,
            {"OMEGA_COWATCH_DP_EPSILON": "1e-9"},
            "OMEGA_COWATCH_DP_EPSILON 1e-09 with OMEGA_COWATCH_DP_DELTA 1e-06 needs a threshold",
        ),
        (
            False,
            {"OMEGA_COWATCH_DP_EPSILON": "4"},
            "OMEGA_COWATCH_DP_EPSILON 4 has no effect without a helper",
        ),
        (
            True,
            {"OMEGA_COWATCH_DP_EPSILON": "4", "OMEGA_COWATCH_THRESHOLD": "0"},
            "OMEGA_COWATCH_DP_EPSILON 4 has no effect with co-watch off",
        ),
        (
            True,
            {"OMEGA_COWATCH_DP_DELTA": "1e-5"},
            "OMEGA_COWATCH_DP_DELTA has no effect while central DP is off",
        ),
        (
            False,
            {"OMEGA_COWATCH_SPREAD": "4"},
            "OMEGA_COWATCH_SPREAD 4 has no effect without the co-watch step of rounds",
        ),
    ],
)
def test_worker_refuses_dp_settings_it_would_ignore_naming_the_variable(
    tmp_path: Path, helper: bool, env: dict[str, str], words: str
) -> None:
    """`omega worker` runs the co-watch step with the OMEGA_COWATCH_* settings `omega
    serve` reads: what serve refuses, it refuses too, naming the variable (it has no
    --cowatch-dp-* flags), before any round."""
    secret = tmp_path / "secret"
    secret.write_text("ab" * 32)
    args = ["worker", "--once", "--db", f"sqlite:///{tmp_path / 'c.db'}"]
    if helper:
        args += ["--helper-url", "http://127.0.0.1:9", "--helper-secret-file", str(secret)]
    done = _omega(*args, env={**os.environ, **env})
    assert done.returncode == 2, done.stderr
    said = " ".join(done.stderr.split())
    assert words in said and "--cowatch-dp" not in said
    assert "Traceback" not in done.stderr
