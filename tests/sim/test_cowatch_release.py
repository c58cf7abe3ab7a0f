"""``omega simulate --cowatch central-k3``: the centralised stand-in for the private
co-watch release — pairs from the brains' own interface, k ≥ 3 distinct TVs, versions
of changed rows delivered at each sync."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from omega.brain import Brain
from omega.brain.sync_state import CATALOG_ORDER_CURSOR
from omega.clock import ManualClock
from omega.sim.cowatch_release import CentralRelease, defended_rows
from omega.sim.fleet import FleetConfig
from omega.sim.simulate import SimulationOptions, run_simulation
from omega.sim.viewers import synthetic_dataset

FAST = FleetConfig(
    cells=16, sync_every=3, sync_gap_s=6 * 3600.0, round_every_s=12 * 3600.0, round_min_pushes=2
)


def test_only_pairs_backed_by_three_tvs_are_released_best_first() -> None:
    found = Counter({7: 3, 8: 2, 9: 5, 10: 3})
    assert defended_rows(found, k=3, neighbours=2) == [(9, 5), (7, 3)]


def test_versions_carry_changed_rows_and_a_lagging_tv_gets_them_all(tmp_path: Path) -> None:
    release = CentralRelease(k=2, neighbours=5)
    release.forge([(0, 1)])
    release.forge([(0, 1), (2, 3)])
    assert release.publish() == 1 and release.version == 1  # 2 → 3 has one TV only
    release.forge([(2, 3)])
    release.forge([(0, 4)])
    release.forge([(0, 4)])
    assert release.publish() == 2 and release.deltas[1] == {0: [(1, 2), (4, 2)], 2: [(3, 2)]}
    assert release.publish() == 0 and release.version == 2  # nothing new: no version
    with Brain.open(tmp_path / "tv", clock=ManualClock(0.0)) as brain:
        brain.sync.set_cursors({CATALOG_ORDER_CURSOR: json.dumps([str(i) for i in range(5)])})
        assert release.deliver(brain) == 2
        assert brain.cowatch.version() == 2 and release.deliver(brain) == 0


def test_a_replay_with_the_stand_in_delivers_the_table_to_every_tv(tmp_path: Path) -> None:
    data = synthetic_dataset(titles=40, viewers=16, days=5, seed=3)
    options = SimulationOptions(
        fleet=replace(FAST, cowatch="central-k3"),
        baselines=("popularity",),
        work_dir=tmp_path / "work",
        cache_dir=tmp_path / "cache",
        checkpoints=0,
    )
    result = asyncio.run(run_simulation(data, options, lambda *_: None))
    cowatch = result["cowatch"]
    assert isinstance(cowatch, dict) and "stand-in" in str(cowatch["source"])
    assert cowatch["pairs_contributed"] > cowatch["released_pairs"] > 0
    assert cowatch["versions"] >= 1 and cowatch["pairs_forged"] == 0


def _attacked(tmp_path: Path, fleet: FleetConfig) -> dict[str, Any]:
    """A replay of 16 TVs on the stand-in, a quarter of them promoting one title."""
    options = SimulationOptions(
        fleet=fleet,
        baselines=("popularity",),
        work_dir=tmp_path / "work",
        cache_dir=tmp_path / "cache",
        checkpoints=0,
        attack="promote-item",
        attackers=0.25,
    )
    data = synthetic_dataset(titles=40, viewers=16, days=5, seed=3)
    return asyncio.run(run_simulation(data, options, lambda *_: None))


def test_the_promote_item_coalition_forges_pairs_into_the_stand_in(tmp_path: Path) -> None:
    result = _attacked(tmp_path, replace(FAST, cowatch="central-k3"))
    assert result["cowatch"]["pairs_forged"] == 0
    forged = result["attack"]["cowatch"]
    assert forged["pairs_forged"] > 0 and forged["pairs_contributed"] > 0
    for key in ("target_exposure_clean", "target_exposure_attacked"):
        assert 0.0 <= result["attack"][key] <= 1.0


def test_a_withholding_coalition_sends_no_pair_and_leaves_fewer_to_release(tmp_path: Path) -> None:
    result = _attacked(tmp_path, replace(FAST, cowatch="central-k3", cowatch_attack="withhold"))
    clean, attacked = result["cowatch"], result["attack"]["cowatch"]
    assert result["attack"]["cowatch_attack"] == "withhold"
    assert attacked["pairs_forged"] == 0
    # The coalition's four TVs sent nothing, the twelve honest ones what they sent before.
    assert 0 < attacked["pairs_contributed"] < clean["pairs_contributed"]
    assert attacked["released_pairs"] <= clean["released_pairs"]
