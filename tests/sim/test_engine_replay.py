"""The MovieLens replay on a Dask cluster: the local engine's quality figures, exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _movielens_fixtures import Movie, Rating, write_ml_latest
from typer.testing import CliRunner

from omega.cli.main import app
from omega.errors import ConfigError
from omega.sim.engine_replay import Step, schedule
from omega.sim.fleet import FleetConfig
from omega.sim.viewers import synthetic_dataset

#: Everything a replay reports but the sealed bytes (each answer carries a fresh nonce and
#: each push a random batch id, so their sizes vary between two local runs as well).
_BYTES = ("push_bytes_median", "push_bytes_p95", "pull_bytes_median", "pull_bytes_p95")
_VARIES = ("timings", "wall_s", "engine", "constellation", *_BYTES)


def _movielens(root: Path) -> Path:
    """24 synthetic viewers written as an ml-latest directory, their 8 days stretched to
    almost a year (so the brains' weekly loop prunes episodes past the 180-day retention,
    which a brain reopened between steps must not notice)."""
    data = synthetic_dataset(titles=60, viewers=24, days=8, seed=3)
    start = int(data.timestamps.min())
    movies: list[Movie] = [
        (n + 1, f"{item.title} ({item.year or 2000})", tuple(item.genres))
        for n, item in enumerate(data.items)
    ]
    ratings: list[Rating] = [
        (int(u) + 1, int(i) + 1, float(r), start + (int(t) - start) * 40)
        for u, i, r, t in zip(
            data.users, data.items_idx, data.ratings, data.timestamps, strict=True
        )
    ]
    return write_ml_latest(root, movies, ratings, None)


def _simulate(dataset: Path, cache: Path, *engine: str) -> dict[str, Any]:
    flags = ["--seed", "1", "--cells", "16", "--round-days", "20", "--sync-hours", "720"]
    flags += ["--share-min-batch", "20"]
    result = CliRunner().invoke(
        app,
        ["simulate", "--dataset", str(dataset), *flags, "--no-als", "--json", *engine],
        env={"OMEGA_CACHE": str(cache)},
    )
    assert result.exit_code == 0, result.output
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


def test_the_replay_on_dask_reports_the_local_engines_figures(tmp_path: Path) -> None:
    dataset = _movielens(tmp_path / "ml")
    local = _simulate(dataset, tmp_path / "cache")
    dask = _simulate(
        dataset, tmp_path / "cache", "--engine", "dask", "--engine-workers", "2", "--batch", "5"
    )
    assert dask["engine"] == {"workers": 2, "batch": 5} and "engine" not in local
    assert local["rounds"] >= 3 and local["released_patterns"] > 0  # a federated run
    assert local["syncs"] > local["viewers"] and local["shared_reports_sent"] > 0
    assert {k: v for k, v in dask.items() if k not in _VARIES} == {
        k: v for k, v in local.items() if k not in _VARIES
    }  # Omega's figures, the baselines (local-only too), the timeline, syncs, the audit


def test_the_schedule_cuts_where_rounds_are_decided_and_checkpoints_fall() -> None:
    day = 86_400
    who = np.array([0, 1, 0, 0, 1, 0], dtype=np.int64)
    when = np.array([0, 10, day, day + 5, 3 * day, 3 * day + 1], dtype=np.int64)
    config = FleetConfig(sync_every=2, sync_gap_s=day / 2, round_every_s=day)
    syncs, steps = schedule(who, when, config, federated=True, checkpoints=0)
    # Each viewer's first event; 0 a day later (the gap), not 5 s later (one event since);
    # 1 two days later (the gap); 0's second event since its last sync.
    assert syncs.tolist() == [True, True, True, False, True, True]
    assert steps == [Step(0, 3, check=True), Step(3, 5, check=True), Step(5, 6)]
    local_only, marks = schedule(who, when, config, federated=False, checkpoints=3)
    assert not local_only.any()
    assert marks == [Step(0, 2, mark=True), Step(2, 4, mark=True), Step(4, 6)]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--attack", "sign-flip"], "--attack"),
        (["--cowatch", "private"], "--cowatch"),
        (["--batch", "0"], "--batch"),
        (["--address", "tcp://127.0.0.1:1"], "--address"),
    ],
)
def test_the_dask_replay_refuses_what_it_does_not_run(flags: list[str], named: str) -> None:
    engine = [] if named == "--address" else ["--engine", "dask"]
    result = CliRunner().invoke(app, ["simulate", "--dataset", "/nonexistent", *engine, *flags])
    assert isinstance(result.exception, ConfigError) and named in str(result.exception)
