"""``omega simulate --cowatch private``: the fleet contributes co-watch pairs through the
real private protocol (helper, two-server OPRF, threshold recovery in the rounds) and the
released rows reach the brains in their pulls."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from omega.sim.fleet import FleetConfig
from omega.sim.simulate import SimulationOptions, run_simulation
from omega.sim.viewers import synthetic_dataset

FAST = FleetConfig(
    cells=16,
    sync_every=3,
    sync_gap_s=6 * 3600.0,
    round_every_s=12 * 3600.0,
    round_min_pushes=2,
    cowatch_min_batch=5,
    cowatch_epoch_s=86_400.0,
)


def _run(tmp_path: Path, fleet: FleetConfig, **options: Any) -> dict[str, Any]:
    data = synthetic_dataset(titles=40, viewers=16, days=5, seed=3)
    chosen = SimulationOptions(
        fleet=fleet,
        baselines=("popularity",),
        work_dir=tmp_path / "work",
        cache_dir=tmp_path / "cache",
        checkpoints=0,
        **options,
    )
    return asyncio.run(run_simulation(data, chosen, lambda *_: None))


def test_the_private_protocol_releases_rows_that_change_what_brains_recommend(
    tmp_path: Path,
) -> None:
    off = _run(tmp_path / "off", FAST)
    private = _run(tmp_path / "private", replace(FAST, cowatch="private"))
    assert off["cowatch"] is None
    cowatch = private["cowatch"]
    assert "private" in cowatch["source"] and not cowatch["contribution_errors"]
    assert cowatch["cowatch_reports_sent"] > 0 and cowatch["cowatch_rows_released"] > 0
    assert cowatch["tvs_holding_rows"] == private["viewers"]  # the rows came in pulls
    assert cowatch["newcomer_pull_bytes"] > 0
    # Nothing else differs between the two runs (one seed): the rows moved the rankings.
    assert private["omega"] != off["omega"]
    # The audit found no pair in clear and no (TV, pair) link at either server.
    for count in ("cowatch_pairs_in_clear", "cowatch_helper_readable", "cowatch_leader_tagged"):
        assert cowatch[count] == 0
    assert cowatch["requests_to_helper"] > 0 and cowatch["request_bytes_to_helper_max"] > 0


def test_the_coalition_forges_pairs_through_the_same_protocol(tmp_path: Path) -> None:
    result = _run(tmp_path, replace(FAST, cowatch="private"), attack="promote-item", attackers=0.25)
    assert result["cowatch"]["pairs_forged"] == 0
    forged = result["attack"]["cowatch"]
    assert forged["pairs_forged"] > 0 and forged["cowatch_reports_sent"] > 0
    assert not forged["contribution_errors"]


def test_a_cheaper_pair_lets_a_tight_budget_send_more(tmp_path: Path) -> None:
    """``cowatch_epsilon`` is what each pair costs the TV's report budget."""
    tight = replace(FAST, cowatch="private", report_budget=16.0, cowatch_per_epoch=16)
    dear = _run(tmp_path / "dear", replace(tight, cowatch_epsilon=4.0))["cowatch"]
    cheap = _run(tmp_path / "cheap", replace(tight, cowatch_epsilon=0.5))["cowatch"]
    assert cheap["cowatch_reports_sent"] > 2 * dear["cowatch_reports_sent"] > 0


def test_idle_tvs_contribute_what_one_epoch_could_not_hold(tmp_path: Path) -> None:
    """A TV left with pairs keeps contributing at the replay's weekly ticks while idle
    (``cowatch_idle_syncs``), one epoch's bound at a time."""
    few = replace(FAST, cowatch="private", cowatch_per_epoch=2, round_every_s=86_400.0)
    busy = _run(tmp_path / "busy", replace(few, cowatch_idle_syncs=False))["cowatch"]
    idle = _run(tmp_path / "idle", few)["cowatch"]
    assert idle["cowatch_reports_sent"] > busy["cowatch_reports_sent"] > 0
    assert not idle["contribution_errors"]
