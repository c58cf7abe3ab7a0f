"""The fleet replay end to end: real brains, the real protocol, an in-process constellation."""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import msgspec
import numpy as np
import pytest

from omega.protocol.codec import encode
from omega.protocol.messages import (
    FrequencyReport,
    Pattern,
    PullRequest,
    PushRequest,
    SyncRequest,
)
from omega.sim._simulate_fleets import _checkpoint, fleet_scorer
from omega.sim.audit import PrivacyAudit
from omega.sim.constellation import sim_settings
from omega.sim.content import shared_catalog
from omega.sim.evaluation import split
from omega.sim.fleet import FleetConfig, FleetRun, play, rating_to_view
from omega.sim.fleet_replay import replay_fleet
from omega.sim.simulate import SimulationOptions, run_simulation
from omega.sim.viewers import synthetic_dataset
from omega.storage import SQLiteStorage, open_storage

FAST = FleetConfig(
    cells=16, sync_every=3, sync_gap_s=6 * 3600.0, round_every_s=12 * 3600.0, round_min_pushes=2
)


def _run(tmp_path: Path, fleet: FleetConfig = FAST, **options: object) -> dict[str, object]:
    data = synthetic_dataset(titles=80, viewers=12, days=5, seed=3)
    chosen = SimulationOptions(
        fleet=fleet,
        baselines=("popularity",),
        work_dir=tmp_path / "work",
        cache_dir=tmp_path / "cache",
        checkpoints=3,
        **options,  # type: ignore[arg-type]
    )
    return asyncio.run(run_simulation(data, chosen, lambda *_: None))


def test_replay_syncs_through_the_protocol_and_reports(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert result["viewers"] == 12
    assert result["holdout"] == "last"
    assert result["syncs"] > 12  # every TV synced more than once
    assert result["rounds"] >= 1
    assert result["requests_inspected"] >= result["syncs"]
    # nothing but patterns crossed the wire
    assert result["raw_items_sent"] == 0
    assert result["event_records_sent"] == 0
    assert result["search_strings_sent"] == 0
    # one two-server popularity report (opaque bytes) rides with most pushes, counted by
    # the constellation and the helper the simulator started
    assert result["reports"] == "shared" and result["frequency_reports_sent"] == 0
    assert result["shared_reports_sent"] > 0 and result["shared_epsilon"] == 4.0
    # ε composes over each TV's reports: at least one report, at most one per push.
    assert 4.0 <= result["epsilon_per_viewer_median"] <= result["epsilon_per_viewer_max"]  # type: ignore[operator]
    assert 0 < result["push_bytes_median"] <= 1024  # type: ignore[operator]
    omega = result["omega"]
    local = result["baselines"]["local_only"]  # type: ignore[index]
    for figures in (omega, local, result["baselines"]["popularity"]):  # type: ignore[index]
        assert 0.0 <= figures["ndcg@10"] <= figures["hr@10"] <= 1.0  # type: ignore[index]
        # One rule for every row: tie-fair headline between the two extremes, and the
        # standard metrics beside it.
        for name in ("ndcg@10", "hr@10", "mrr"):
            low, high = figures[f"{name}_pessimistic"], figures[f"{name}_optimistic"]  # type: ignore[index]
            assert low <= figures[name] <= high  # type: ignore[index]
        for name in ("map@10", "recall@20", "coverage@10", "ndcg@5"):
            assert 0.0 <= figures[name] <= 1.0, name  # type: ignore[index]
    # Paired on the same viewers: the mean of the differences is the difference of the
    # means; its standard error is the spread of the per-viewer differences.
    for row in (local, result["baselines"]["popularity"]):  # type: ignore[index]
        gap = omega["ndcg@10"] - row["ndcg@10"]  # type: ignore[index,operator]
        assert row["omega_minus_ndcg@10"] == pytest.approx(gap, abs=1e-12)  # type: ignore[index]
        assert row["omega_minus_ndcg@10_se"] >= 0.0  # type: ignore[index]
    assert "omega_minus_ndcg@10" not in omega
    assert result["timeline"], "checkpoints over simulated time"


def test_a_validation_run_drops_each_viewers_last_interaction(tmp_path: Path) -> None:
    full = synthetic_dataset(titles=80, viewers=12, days=5, seed=3).n_ratings
    result = _run(tmp_path, validation=True)
    assert result["holdout"] == "second-to-last (validation)"
    assert result["viewers"] == 12
    assert result["events"] == full - 12  # every synthetic viewer has more than one event


def test_ldp_reports_instead_of_two_server_ones(tmp_path: Path) -> None:
    result = _run(tmp_path, replace(FAST, reports="ldp"))
    assert result["reports"] == "ldp" and result["shared_reports_sent"] == 0
    assert result["frequency_reports_sent"] > 0 and result["report_epsilon"] == 8.0
    assert 8.0 <= result["epsilon_per_viewer_median"] <= result["epsilon_per_viewer_max"]  # type: ignore[operator]


def test_the_report_budget_caps_what_each_viewer_spends(tmp_path: Path) -> None:
    free = _run(tmp_path / "free", replace(FAST, report_budget=0.0, reports="ldp"))
    capped = _run(tmp_path / "capped", replace(FAST, report_budget=16.0, reports="ldp"))
    assert free["epsilon_per_viewer_max"] > 16.0  # type: ignore[operator]
    assert capped["epsilon_per_viewer_max"] == 16.0  # two reports at ε = 8
    assert capped["frequency_reports_sent"] < free["frequency_reports_sent"]  # type: ignore[operator]


def test_a_promote_item_attack_is_measured(tmp_path: Path) -> None:
    result = _run(tmp_path, attack="promote-item", attackers=0.25)
    attack = result["attack"]
    assert attack["kind"] == "promote-item"  # type: ignore[index]
    assert attack["attackers"] == 0.25  # type: ignore[index]
    for key in ("target_exposure_clean", "target_exposure_attacked"):
        assert 0.0 <= attack[key] <= 1.0  # type: ignore[index]
    assert attack["target_item"]  # type: ignore[index]
    # A TV that never watched anything syncs after each replay: its first screen is measured.
    for key in ("target_on_new_tv_clean", "target_on_new_tv_attacked"):
        assert isinstance(attack[key], bool)  # type: ignore[index]


def test_the_audit_catches_an_item_id_smuggled_into_a_push() -> None:
    audit = PrivacyAudit.for_catalog(["296", "318"], ["Pulp Fiction (1994)"])
    clean = SyncRequest(
        pull=PullRequest(viewer_id="v1"),
        push=PushRequest(
            viewer_id="v1",
            batch_id="b1",
            codebook_id="c",
            added=[
                Pattern(id="a" * 16, task="preference", cells=(3,), success_rate=0.9, support=4)
            ],
        ),
    )
    audit.inspect(encode(clean))
    assert (audit.raw_items_sent, audit.event_records_sent) == (0, 0)
    # A push whose pattern id is really an item id, and one with an event-like record.
    leaky = msgspec.structs.replace(
        clean,
        push=msgspec.structs.replace(clean.push, batch_id="296"),  # type: ignore[arg-type]
    )
    audit.inspect(encode(leaky))
    assert audit.raw_items_sent == 1
    raw = msgspec.msgpack.encode({"msg": "push", "history": [{"item_id": "x", "ts": 1}]})
    audit.inspect(b"\x01\x00" + raw)
    assert audit.event_records_sent >= 1


def test_the_audit_composes_each_viewers_reports_once() -> None:
    audit = PrivacyAudit.for_catalog(["296"], ["Pulp Fiction (1994)"])

    def push(batch: str, *seeds: int) -> bytes:
        reports = [FrequencyReport(seed=s, value=1, buckets=2982, epsilon=8.0) for s in seeds]
        return encode(PushRequest(viewer_id="v", batch_id=batch, codebook_id="c", reports=reports))

    audit.inspect(push("b1", 11), viewer="a")
    audit.inspect(push("b1", 11), viewer="a")  # a retry resends the same report: no new loss
    audit.inspect(push("b2", 12), viewer="a")
    audit.inspect(push("b3", 11), viewer="b")  # another TV may draw the same seed
    audit.inspect(push("b5", 13), viewer="b")
    summary = audit.summary()
    assert audit.frequency_reports_sent == 5
    assert audit.epsilon_spent == {"a": 16.0, "b": 16.0}
    assert (summary["epsilon_per_viewer_median"], summary["epsilon_per_viewer_max"]) == (16, 16)
    audit.inspect(push("b4", 14), viewer="b")
    assert audit.summary()["epsilon_per_viewer_max"] == 24.0
    assert audit.summary()["epsilon_per_viewer_median"] == 20.0


@pytest.mark.parametrize(
    ("stars", "expected"),
    [
        (5.0, ("view", 1.0)),
        (4.0, ("view", 0.9)),
        (3.0, ("view", 0.6)),
        (2.0, ("view", 0.25)),
        (1.0, ("skip", 0.0)),
        (0.5, ("skip", 0.0)),
    ],
)
def test_ratings_replay_as_tv_events(stars: float, expected: tuple[str, float]) -> None:
    assert rating_to_view(stars) == expected


def test_a_seed_reproduces_a_run_with_two_server_reports(tmp_path: Path) -> None:
    fleet = replace(FAST, share_min_batch=5, seed=7)
    first = _run(tmp_path / "a", fleet, seed=7)
    again = _run(tmp_path / "b", fleet, seed=7)
    assert first["shared_reports_sent"] == again["shared_reports_sent"] > 0
    assert first["omega"] == again["omega"]  # the servers' noise is seeded too


def test_one_seed_gives_one_set_of_clean_figures_whichever_command_runs_the_fleet(
    tmp_path: Path,
) -> None:
    """The attack command replays the clean fleet exactly as the plain command does; its
    clean-vs-attacked figures are over the honest viewers only, and say so."""
    fleet = replace(FAST, share_min_batch=5, seed=4)
    plain = _run(tmp_path / "plain", fleet, seed=4)
    attacked = _run(tmp_path / "attack", fleet, seed=4, attack="promote-item", attackers=0.25)
    for key in ("omega", "baselines", "timeline", "personalisation", "rounds", "syncs"):
        assert attacked[key] == plain[key], key
    attack = attacked["attack"]
    assert attack["honest_viewers"] == 12 - 3  # type: ignore[index]


def test_the_brain_excludes_exactly_the_train_titles(tmp_path: Path) -> None:
    """The evaluation masks train titles itself; the brain's own −inf must agree, so a
    fleet row and a baseline row rank among the same titles."""
    data = synthetic_dataset(titles=80, viewers=6, days=5, seed=3)
    held_out = split(data)
    shared = shared_catalog(data, cells=16, cache_dir=tmp_path / "cache", seed=0)
    run = asyncio.run(
        replay_fleet(
            data, held_out, shared, root=tmp_path / "fleet", config=FAST, constellation=None
        )
    )
    try:
        seen = held_out.train_matrix.toarray() > 0
        for v in range(held_out.n_viewers):
            scores = run.viewers[v].brain.score_all()
            assert np.array_equal(np.isneginf(scores), seen[v]), v
    finally:
        run.close()


def test_a_replay_without_a_work_dir_removes_its_brains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where the fleets' brains go
    data = synthetic_dataset(titles=80, viewers=12, days=5, seed=3)
    options = SimulationOptions(
        fleet=FAST, baselines=("popularity",), cache_dir=tmp_path / "cache", checkpoints=2
    )
    result = asyncio.run(run_simulation(data, options, lambda *_: None))
    assert result["syncs"] > 12  # it replayed, with brains on disk
    assert list(temp.iterdir()) == []  # and left none behind
    kept = replace(options, work_dir=tmp_path / "work")  # asked for: kept
    asyncio.run(run_simulation(data, kept, lambda *_: None))
    assert (tmp_path / "work" / "omega").is_dir()


def test_checkpoints_reuse_the_scores_of_viewers_the_replay_left_unchanged(
    tmp_path: Path,
) -> None:
    """A viewer whose training ended is scored once, then its scores serve every later
    checkpoint: the same figures as scoring it again, and a viewer that changed since
    (an event or a sync) is scored afresh."""
    data = synthetic_dataset(titles=80, viewers=12, days=10, seed=3)
    # Half the viewers watch a month earlier: done while the others replay on.
    early = np.where(data.users % 2 == 0, 30 * 86_400, 0).astype(np.int64)
    data = replace(data, timestamps=data.timestamps - early)
    held_out = split(data)
    shared = shared_catalog(data, cells=16, cache_dir=tmp_path / "cache", seed=0)
    finished_at = np.array(
        [int(held_out.train_history(v)[2].max(initial=0)) for v in range(held_out.n_viewers)]
    )
    reused: list[int] = []
    compared: list[dict[str, float]] = []

    def check(run: FleetRun, ts: float) -> dict[str, float]:
        before = dict(run.scored)
        kept = _checkpoint(held_out, finished_at, frozenset(), run, ts, reuse=True)
        fresh = _checkpoint(held_out, finished_at, frozenset(), run, ts)
        assert json.dumps(kept) == json.dumps(fresh)  # NaN before any viewer is done
        reused.extend(v for v, was in before.items() if run.scored[v] is was)
        changed = [v for v, was in before.items() if run.scored[v] is not was]
        assert all(run.scored[v][0] != before[v][0] for v in changed)
        compared.append(kept)
        return kept

    run = asyncio.run(
        replay_fleet(
            data,
            held_out,
            shared,
            root=tmp_path / "fleet",
            config=FAST,
            constellation=None,
            checkpoints=6,
            on_checkpoint=check,
        )
    )
    try:
        assert len(compared) == 5
        assert reused, "no viewer was done at two checkpoints: the reuse went untested"
        assert run.scored == {}  # let go once the replay is over
        # A viewer the replay changes again (here one more event, as the replay plays
        # it) is scored afresh, not served its kept scores.
        score = fleet_scorer(run, held_out, reuse=True)
        first = score(0)
        assert score(0) is first
        play(run.viewers[0].brain, data.items[int(held_out.holdout[0])].item_id, 5.0)
        run.viewers[0].changes += 1
        again = score(0)
        assert again is not first and not np.array_equal(again, first)
        assert np.array_equal(again, run.viewers[0].brain.score_all())
    finally:
        run.close()


@pytest.mark.parametrize(("fsync", "synchronous"), [(False, 1), (True, 2)])
def test_a_replays_tvs_and_constellation_wait_for_the_disk_only_with_fsync(
    tmp_path: Path, fsync: bool, synchronous: int
) -> None:
    """By default a replay's files (thrown away after it) commit without fsync: the
    brains' durable commits and the constellation's SQLite file alike; ``--fsync``
    (``FleetConfig.fsync``) keeps both as real ones are."""
    data = synthetic_dataset(titles=80, viewers=3, days=2, seed=3)
    held_out = split(data)
    shared = shared_catalog(data, cells=16, cache_dir=tmp_path / "cache", seed=0)
    config = replace(FAST, fsync=fsync)
    run = asyncio.run(
        replay_fleet(
            data, held_out, shared, root=tmp_path / "fleet", config=config, constellation=None
        )
    )
    try:
        assert {v.brain.store.fsync for v in run.viewers.values()} == {fsync}
    finally:
        run.close()
    store = open_storage(sim_settings(tmp_path / "constellation", fsync=fsync).storage_url)
    try:
        assert isinstance(store, SQLiteStorage)
        assert store._db.conn().execute("PRAGMA synchronous").fetchone() == (synchronous,)
    finally:
        store.close()
