"""The WASM bundle built once per session (``omega sdk wasm``), as a web-app maker builds it."""

from __future__ import annotations

import pytest
from _wasm_world import build

from omega.wasm.bundle import Bundle


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return build(tmp_path_factory.mktemp("bundle"))
