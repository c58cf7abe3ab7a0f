"""A synthetic fleet in batches of TVs per engine task, against a real ``omega serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from omega.bench.fleet_day import run_fleet_day
from omega.cli.main import app
from omega.errors import ConfigError


def _day(engine: str, tmp_path: Path) -> dict[str, Any]:
    return run_fleet_day(
        tvs=24,
        days=2,
        engine=engine,
        workers=2,
        batch=8,
        titles=80,
        cells=16,
        seed=3,
        cache_dir=tmp_path / "cache",
        work_dir=tmp_path,
    )


def test_a_fleet_on_dask_does_what_it_does_on_the_local_engine(tmp_path: Path) -> None:
    local, dask = _day("local", tmp_path), _day("dask", tmp_path)
    assert dask["engine_workers"] == 2 and dask["tasks_per_step"] == 3
    assert dask["sync_errors"] == local["sync_errors"] == 0
    assert dask["syncs"] >= 24 and dask["pushes"] > 0 and dask["pull_bytes"] > 0
    same = ("tvs", "events", "syncs", "pushes")  # bytes vary: sealed, with fresh nonces
    assert {k: dask[k] for k in same} == {k: local[k] for k in same}
    rounds = [step["round"] for step in dask["steps"]]
    assert rounds == [step["round"] for step in local["steps"]]
    assert len(rounds) >= 2 and set(rounds) <= {"unchanged", "released"}  # a round a step
    assert list(tmp_path.glob("omega-fleet-day-*")) == []  # brains and server data removed


def test_an_engine_omega_does_not_run_on_is_refused() -> None:
    bad = CliRunner().invoke(app, ["simulate", "--engine", "ray", "--tvs", "5"])
    assert isinstance(bad.exception, ConfigError) and "--engine" in str(bad.exception)


@pytest.mark.parametrize("flag", [["--batch", "0"], ["--days", "0"], ["--engine-workers", "0"]])
def test_fleet_flags_are_checked(flag: list[str]) -> None:
    result = CliRunner().invoke(app, ["simulate", "--tvs", "3", *flag])
    assert isinstance(result.exception, ConfigError) and "≥ 1" in str(result.exception)
