"""A brain to run ``omega`` commands on."""

from __future__ import annotations

from pathlib import Path

import pytest
from _cli_world import omega


@pytest.fixture(scope="session")
def brain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A brain with two titles (embedded by the real model), one of them watched."""
    root = tmp_path_factory.mktemp("cli")
    catalog = root / "catalog.csv"
    catalog.write_text("item_id,title,genres\nm1,Heat,Crime\nm2,Up,Animation\nm3,Casino,Crime\n")
    assert omega("brain", "init", str(root / "tv")).returncode == 0
    assert omega("brain", "catalog-import", str(root / "tv"), str(catalog)).returncode == 0
    assert omega("brain", "track", str(root / "tv"), "view", "m3", "--completed").returncode == 0
    return root / "tv"
