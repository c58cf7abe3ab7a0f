"""A browser TV (Pyodide under Node.js) syncs with a real constellation on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _wasm_world import CODEBOOK, HERE, Constellation, start_constellation

from omega.wasm.bundle import Bundle
from omega.wasm.node import run_in_pyodide


@pytest.fixture
def constellation(tmp_path: Path) -> Iterator[Constellation]:
    server = start_constellation(tmp_path / "server")
    try:
        yield server
    finally:
        server.stop()


def test_a_browser_tv_pushes_pulls_and_checks_the_seal(
    bundle: Bundle, constellation: Constellation, tmp_path: Path
) -> None:
    io = tmp_path / "io"
    io.mkdir()
    config = {"base_url": constellation.base_url, "codebook": CODEBOOK}
    (io / "config.json").write_text(json.dumps(config))
    run_in_pyodide(bundle, HERE / "_browser_tv.py", io=io)
    result = json.loads((io / "result.json").read_text())
    assert result["status"] == 200
    assert sorted(result["accepted"]) == ["p0", "p1", "p2"]
    assert result["trusted"]  # the keys the registration answer gave
    assert result["replayed"].startswith("SignatureError: the answer does not match")
    stats = constellation.admin("GET", "/api/omega/stats").json()
    assert stats["viewers"] == 1
    assert stats["pending_contributions"] == 3  # the patterns it pushed, taken in
