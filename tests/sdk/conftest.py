"""The SDK built once per session, its C programs, and the library loaded through ctypes."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest
from _omega_ctypes import load
from _sdk_world import EXAMPLE, HERE, build, program


@pytest.fixture(scope="session")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``omega sdk build --out DIR``'s DIR: lib/libomega.so and include/omega.h."""
    return build(tmp_path_factory.mktemp("sdk"))


@pytest.fixture(scope="session")
def tv(sdk: Path) -> Path:
    """The example, built as docs/sdk.md builds it."""
    return program(sdk, EXAMPLE, sdk)


@pytest.fixture(scope="session")
def stress(sdk: Path) -> Path:
    return program(sdk, HERE / "stress.c", sdk)


@pytest.fixture(scope="session")
def lib(sdk: Path) -> ctypes.CDLL:
    """libomega.so loaded into this (Python) process: it runs on this interpreter."""
    return load(sdk / "lib" / "libomega.so")
