"""What ``omega`` prints for people: tables with dates and sizes, values one can copy."""

from __future__ import annotations

import json
import re
from pathlib import Path

from _cli_world import omega

from omega.brain.skills import SKILLS


def test_brain_stats_shows_dates_and_every_skill_not_epoch_floats_or_json(brain: Path) -> None:
    done = omega("brain", "stats", str(brain))
    assert done.returncode == 0, done.stderr
    assert not re.search(r"\b1\d{9}(\.\d+)?\b", done.stdout), done.stdout  # epoch seconds
    assert "{" not in done.stdout
    assert re.search(r"20\d\d-\d\d-\d\d \d\d:\d\d", done.stdout)  # the tiers' updates
    assert re.search(r"last sync \(UTC\)\s+│ never", done.stdout)
    for skill in SKILLS:
        assert skill in done.stdout
    raw = json.loads(omega("brain", "stats", str(brain), "--json").stdout)
    assert isinstance(raw["tiers"]["semantic"]["updated_at"], float)  # --json stays raw


def test_helper_key_prints_the_key_on_one_line(tmp_path: Path) -> None:
    done = omega("helper", "key", "--data-dir", str(tmp_path / "h"), columns=40)
    assert done.returncode == 0, done.stderr
    keys = [line for line in done.stdout.splitlines() if re.fullmatch(r"[0-9a-f]{64}", line)]
    assert len(keys) == 1, done.stdout
