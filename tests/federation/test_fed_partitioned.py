"""A round planned in partitions by target content group equals the round planned whole."""

from __future__ import annotations

import numpy as np
import pytest
from _engine_world import CONFIG, NOW, engine_world, round_inputs

from omega.federation import CellGroups, SerialEngine, plan_release
from omega.federation._table import build_table
from omega.federation.partitioned import split_by_target


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_a_partitioned_plan_is_identical_to_the_whole_plan(workers: int) -> None:
    codebook, live = engine_world()
    groups = CellGroups().for_codebook(codebook, CONFIG.similarity)
    whole = plan_release(round_inputs(codebook, live), groups, CONFIG, now=NOW)
    split = plan_release(
        round_inputs(codebook, live), groups, CONFIG, now=NOW, engine=SerialEngine(workers)
    )
    assert split == whole
    # The world exercises what could go wrong: released, too-few and disputed clusters,
    # trends in every region, content groups of two cells.
    assert whole.stats.released > 0 and whole.stats.disputed > 0
    assert whole.stats.too_few_viewers > 0
    assert {t.region for t in whole.trends} == {"eu", "us", "apac", "global"}
    assert len(np.unique(groups)) == len(groups) // 2


def test_partitions_hold_whole_target_groups() -> None:
    codebook, live = engine_world()
    groups = CellGroups().for_codebook(codebook, CONFIG.similarity)
    table = build_table(live, CONFIG, k=len(groups), now=NOW)
    parts = split_by_target(table, groups, 6)
    assert len(parts) == 6
    assert sum(len(p) for p in parts) == len(table)
    seen = [set(groups[p.target].tolist()) for p in parts]
    assert all(a.isdisjoint(b) for i, a in enumerate(seen) for b in seen[i + 1 :])
