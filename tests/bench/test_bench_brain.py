"""``omega bench brain``: a small brain measured for real, its fresh TV process included."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from omega.bench import run_brain_bench


def test_a_small_brain_bench_reports_every_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where its brain goes
    result = run_brain_bench(catalog=200, events=20, patterns=50, calls=10, vectors="clustered")
    assert list(tmp_path.iterdir()) == []  # the brain's directory removed after
    assert result["catalog_size"] == 200 and result["vectors"] == "clustered"
    for key in (
        "recommend_p50_ms",
        "recommend_p99_ms",
        "recommend_after_event_p50_ms",
        "observe_per_s",
        "embed_ms",
    ):
        assert isinstance(result[key], float) and result[key] > 0
    # From the fresh TV process (python -m omega.bench._fresh_tv).
    for key in ("rss_mb", "cold_start_s", "warm_start_s"):
        assert isinstance(result[key], float) and result[key] > 0
    assert 0.0 <= float(str(result["search_recall_at_10"])) <= 1.0
    # The co-watch table was loaded before timing: 20 neighbours for each of 200 titles.
    assert result["cowatch_neighbours"] == 20
    assert int(str(result["cowatch_memory_bytes"])) >= 200 * 20 * 8
    assert int(str(result["cowatch_disk_bytes"])) >= 200 * 20 * 8
