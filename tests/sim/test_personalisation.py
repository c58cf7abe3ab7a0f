"""Personalisation speed: NDCG@10 by history length and the cold-start curve."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from omega.errors import ConfigError
from omega.sim import PopularityScorer, split, synthetic_dataset
from omega.sim.evaluation import K, expected_gains, holdout_ranks
from omega.sim.fleet import FleetConfig
from omega.sim.personalisation import (
    BUCKETS,
    MAX_EVENTS,
    Gains,
    Starts,
    by_history,
    probe_viewers,
    without_viewers,
)
from omega.sim.report import write_report
from omega.sim.simulate import SimulationOptions, run_simulation

FAST = FleetConfig(
    cells=16, sync_every=3, sync_gap_s=6 * 3600.0, round_every_s=12 * 3600.0, round_min_pushes=2
)
PROBES = 5


def _data() -> Any:
    return synthetic_dataset(titles=90, viewers=16, days=6, seed=3)


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One small run with the cold-start curve (a few seconds)."""
    root = tmp_path_factory.mktemp("personalisation")
    options = SimulationOptions(
        fleet=FAST,
        baselines=("popularity",),
        work_dir=root / "work",
        cache_dir=root / "cache",
        checkpoints=0,
        cold_start=PROBES,
    )
    return asyncio.run(run_simulation(_data(), options, lambda *_: None))


def test_without_viewers_drops_their_rows_and_keeps_the_others_histories() -> None:
    data = _data()
    full = split(data)
    gone = np.array([0, 5, 15], dtype=np.int64)
    rest = split(without_viewers(data, gone))
    kept = [v for v in range(full.n_viewers) if v not in gone]
    assert rest.n_viewers == len(kept) and rest.dataset.user_ids[0] == data.user_ids[1]
    for new, old in enumerate(kept):
        assert rest.train_sequence(new).tolist() == full.train_sequence(old).tolist()
        assert rest.holdout[new] == full.holdout[old]
    assert rest.dataset.n_ratings == data.n_ratings - sum(
        len(full.train_sequence(int(v))) + 1 for v in gone
    )


def test_probes_have_long_enough_histories_and_a_bad_count_is_one_sentence() -> None:
    data = split(_data())
    probes = probe_viewers(data, 4, seed=1)
    assert len(set(probes.tolist())) == 4
    assert all(len(data.train_sequence(int(v))) > MAX_EVENTS for v in probes)
    assert probe_viewers(data, 4, seed=1).tolist() == probes.tolist()  # seeded
    with pytest.raises(ConfigError, match="--cold-start must be between 1 and"):
        probe_viewers(data, data.n_viewers, seed=1)


def test_by_history_groups_viewers_by_training_interactions() -> None:
    data = split(_data())
    lengths = np.diff(data.train_indptr)
    ndcg = lengths.astype(np.float64)  # each viewer's "gain" is its history length
    rows = by_history(data, {"omega": Gains(ndcg, ndcg)})
    assert sum(row["viewers"] for row in rows) == int((lengths >= 1).sum())
    for row in rows:
        low, high = row["low"], row["high"]
        assert (low, high) in BUCKETS
        inside = lengths[(lengths >= low) & (lengths <= (high or lengths.max()))]
        assert row["histories"] == "full" and row["viewers"] == len(inside)
        assert row["omega_ndcg@10"] == pytest.approx(inside.mean())


def test_starts_move_by_whole_weeks_after_the_join() -> None:
    data = split(_data())
    starts = Starts.of(data, np.array([2, 3], dtype=np.int64))
    assert starts.items.shape == (2, MAX_EVENTS + 1)
    assert starts.items[0].tolist() == data.train_sequence(2)[: MAX_EVENTS + 1].tolist()
    joined = float(starts.timestamps[0, 0]) + 30 * 86_400 + 5.0
    moved = starts.after(0, joined)
    shift = moved - starts.timestamps[0]
    assert moved[0] >= joined and np.all(shift == shift[0]) and shift[0] % (7 * 86_400) == 0


def test_full_history_rows_average_to_the_tie_fair_figure(result: dict[str, Any]) -> None:
    data = split(_data())
    higher, lost = holdout_ranks(data, PopularityScorer(data))
    _, gains = expected_gains(higher, lost - higher)
    rows = [r for r in result["personalisation"]["by_history"] if r["histories"] == "full"]
    weighted = sum(r["popularity_ndcg@10"] * r["viewers"] for r in rows)
    assert weighted / sum(r["viewers"] for r in rows) == pytest.approx(gains.mean())


def test_the_cold_start_curve_replays_first_events_on_new_tvs(result: dict[str, Any]) -> None:
    cold = result["personalisation"]["cold_start"]
    assert cold["fleet_viewers"] == 16 - PROBES  # the probes never reached its fleet
    curve = cold["curve"]
    assert [p["k"] for p in curve] == list(range(MAX_EVENTS + 1))
    for point in curve:
        assert point["viewers"] == PROBES
        for model in ("omega", "local_only", "popularity"):
            assert 0.0 <= point[f"{model}_ndcg@10"] <= point[f"{model}_hr@10"] <= 1.0
    # A TV with no viewing and no federation ties every title: the expected figure of a
    # uniformly random rank. The new TV that joined the constellation pulled its release.
    _, all_tied = expected_gains(np.array([0]), np.array([90 - 1]), K)
    assert curve[0]["local_only_ndcg@10"] == pytest.approx(all_tied[0])
    assert curve[0]["omega_ndcg@10"] != pytest.approx(all_tied[0])
    # The truncated histories fill the short buckets the synthetic viewers lack.
    truncated = [r for r in result["personalisation"]["by_history"] if r["histories"] != "full"]
    assert [r["bucket"] for r in truncated] == ["1–2", "3–5", "6–10"]


def test_cold_start_refuses_a_remote_constellation(tmp_path: Path) -> None:
    options = SimulationOptions(server="http://127.0.0.1:9", admin_token="t", cold_start=2)
    with pytest.raises(ConfigError, match="--cold-start needs a fresh constellation"):
        asyncio.run(run_simulation(_data(), options, lambda *_: None))


def test_the_report_shows_both_as_tables_and_plots(result: dict[str, Any], tmp_path: Path) -> None:
    written = [p.name for p in write_report(result, tmp_path)]
    assert "personalisation_by_history.png" in written and "cold_start.png" in written
    for name in ("personalisation_by_history.png", "cold_start.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "report.md").read_text()
    assert "## Personalisation speed" in md
    assert "| training interactions | histories | viewers | Omega (federated) |" in md
    assert f"{PROBES} viewers held out of a second federated fleet of {16 - PROBES}" in md
    k10 = result["personalisation"]["cold_start"]["curve"][-1]
    assert f"| 10 | {k10['omega_ndcg@10']:.4f} ± {k10['omega_ndcg@10_se']:.4f} |" in md
    assert json.loads((tmp_path / "report.json").read_text())["personalisation"]


def test_a_report_without_the_section_draws_neither_plot(tmp_path: Path) -> None:
    written = [p.name for p in write_report({"dataset": "synthetic"}, tmp_path)]
    assert written == ["report.json", "report.md"]
    assert "Personalisation" not in (tmp_path / "report.md").read_text()
