"""``omega simulate --cowatch private``: the fleet contributes co-watch pairs through the
real private protocol (helper, two-server OPRF, threshold recovery in the rounds) and the
released rows reach the brains in their pulls."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import replace
from pathlib import Path
from typing import Any

from omega.sim import Dataset
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


def _run(
    tmp_path: Path, fleet: FleetConfig, data: Dataset | None = None, **options: Any
) -> dict[str, Any]:
    data = data or synthetic_dataset(titles=40, viewers=16, days=5, seed=3)
    chosen = SimulationOptions(
        fleet=fleet,
        baselines=("popularity",),
        work_dir=tmp_path / "work",
        cache_dir=tmp_path / "cache",
        **({"checkpoints": 0} | options),
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
    # Nothing sent twice (no retries here), no pair handed twice by a brain.
    sent = cowatch["cowatch_reports_sent"]
    assert sent == cowatch["cowatch_reports_distinct"] == cowatch["pairs_contributed"]
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


def test_both_servers_charge_each_tv_per_simulated_epoch(tmp_path: Path) -> None:
    """The servers' co-watch epochs follow the replay's clock, so their bound is the TVs'
    own per simulated epoch (on the wall clock the whole replay is one epoch: a TV past
    its first epoch's bound would be refused with 429 for the rest of the run)."""
    few = replace(FAST, cowatch="private", cowatch_per_epoch=2, report_budget=0.0)
    cowatch = _run(tmp_path, few)["cowatch"]
    assert not cowatch["contribution_errors"]
    # More than one epoch's bound per TV on average: many epochs, each charged apart.
    assert cowatch["cowatch_reports_sent"] > 2 * 16


def test_checkpoints_that_set_clocks_back_make_no_tv_send_a_pair_twice(tmp_path: Path) -> None:
    """A checkpoint scores each viewer whose training ended at its held-out time, which
    moves its clock back behind its later idle contributions; its next sync used to ask
    the brain again for an epoch it had contributed in, and paid for those pairs twice
    (the ~5 % more reports than pairs of the full replays; 224 reports of 198 pairs here
    before the fix). Half the viewers here watch all their titles on the first day."""
    data = synthetic_dataset(titles=40, viewers=16, days=5, seed=3)
    start, early = int(data.timestamps.min()), data.users >= 8
    squeezed = data.timestamps.copy()
    squeezed[early] = start + (squeezed[early] - start) // 5
    data = dataclasses.replace(data, timestamps=squeezed)
    cowatch = _run(tmp_path, replace(FAST, cowatch="private"), data, checkpoints=10)["cowatch"]
    assert cowatch["pairs_contributed"] > 0 and not cowatch["contribution_errors"]
    sent = cowatch["cowatch_reports_sent"]
    assert sent == cowatch["cowatch_reports_distinct"] == cowatch["pairs_contributed"]


def test_the_helper_desk_counts_epochs_on_the_replay_clock(tmp_path: Path) -> None:
    import msgspec
    import pytest
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from omega.clock import ManualClock
    from omega.helper import HelperConfig, HelperService
    from omega.helper.cowatch import OverBudget
    from omega.protocol.attestation import Manufacturer
    from omega.protocol.cowatch import make_report, seal_report
    from omega.protocol.cowatch_wire import ReportRequest, prove
    from omega.sim.cowatch_private import cowatch_desk

    maker = Manufacturer.generate("sim", "k1")
    service = HelperService.open(tmp_path, HelperConfig(min_batch=10, noise_epsilon=0))
    replay = ManualClock(0.0)
    desk = cowatch_desk(
        tmp_path, service, maker, min_batch=1, per_epoch=2, epoch_s=86_400.0, replay=replay
    )
    device = maker.device("tv-0")  # proofs stay on the wall clock
    leader = X25519PrivateKey.generate().public_key()

    def submit(first: int, n: int) -> None:
        reports = [
            seal_report(make_report(bytes([i]) * 32, i, i + 1, k=3), leader)
            for i in range(first, first + n)
        ]
        request = ReportRequest(reports=reports)
        desk.submit(msgspec.structs.replace(request, proof=prove(device, "reports", request)))

    submit(0, 2)
    with pytest.raises(OverBudget):
        submit(2, 1)
    replay.set(86_400.0)  # the next simulated day: a new epoch, a new allowance
    submit(2, 2)


def test_an_idle_tv_waits_out_its_spent_budget_instead_of_leaving_the_fleet(
    tmp_path: Path,
) -> None:
    """A sync that sent nothing because the TV contributed earlier this epoch, or because
    its budget is spent, keeps it among the TVs that idle-sync (until this session both
    dropped it for good: most TVs left after their first epoch); only a TV that could
    send and held nothing leaves, until it watches more."""
    from omega.brain import Brain, BrainConfig
    from omega.clock import ManualClock
    from omega.protocol.attestation import Manufacturer
    from omega.sim.cowatch_private import Plugged
    from omega.sync.cowatch import COWATCH_EPOCH, Contributor
    from omega.sync.reports import REPORT_SPENT
    from omega.sync.transport import AsgiTransport

    year = 365 * 86_400.0
    config = BrainConfig(codebook_cells=6, report_budget=8.0, report_window_s=year)
    brain = Brain.open(tmp_path / "tv", clock=ManualClock(0.0), config=config)
    helper = AsgiTransport(lambda *_: None)  # never called: only the budget is read
    identity = Manufacturer.generate("sim", "k1").device("tv-0")
    tv = Plugged(Contributor(helper=helper, identity=identity, epsilon=1.0), pending=True)
    try:
        brain.sync.set_cursors({COWATCH_EPOCH: "3"})
        tv.after(brain, 3, 1_000.0, sent=0)  # contributed earlier in epoch 3
        assert tv.pending and not tv.due(3, 2_000.0) and tv.due(4, 2_000.0)
        brain.sync.set_cursors({REPORT_SPENT: "500.0:4.0 600.0:4.0"})
        tv.after(brain, 4, 2_000.0, sent=0)  # the budget is spent until 500 + a year
        assert tv.pending and tv.wait == 500.0 + year
        assert not tv.due(5, year) and tv.due(60, 500.0 + year)
        brain.sync.set_cursors({REPORT_SPENT: ""})
        tv.after(brain, 60, 600.0 + year, sent=0)  # it could send and held nothing
        assert not tv.pending and not tv.due(61, 2 * year)
    finally:
        brain.close()


def test_central_dp_at_a_small_fleet_spends_epsilon_and_releases_nothing(tmp_path: Path) -> None:
    """At 16 TVs no pair nears the threshold ε 8 needs (~292 TVs): the rounds that
    folded a batch each spent ε 8 on a release that held no pair, as the report says."""
    noisy = replace(FAST, cowatch="private", cowatch_dp_epsilon=8.0, cowatch_dp_delta=1e-6)
    cowatch = _run(tmp_path, noisy)["cowatch"]
    dp = cowatch["dp"]
    assert cowatch["cowatch_reports_sent"] > 0 and dp["releases"] >= 1
    assert (dp["epsilon_per_release"], dp["delta_per_release"]) == (8.0, 1e-6)
    assert dp["epsilon_spent"] == 8.0 * dp["releases"]
    assert cowatch["cowatch_rows_released"] == 0 and cowatch["tvs_holding_rows"] == 0
