"""``write_report`` and the terminal tables, on hand-made result dicts."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console
from rich.table import Table

from omega.errors import ConfigError, InputError
from omega.sim.report import (
    FEW_VIEWERS,
    check_report_directory,
    quality_over_time_figure,
    quality_table,
    render_markdown,
    summary_table,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DAY = 86_400.0


def _figures(hr: float, ndcg: float, *, standard: bool = True) -> dict[str, float]:
    figures = {
        "hr@10": hr,
        "ndcg@10": ndcg,
        "hr@10_pessimistic": hr * 0.9,
        "ndcg@10_pessimistic": ndcg * 0.9,
    }
    if standard:  # the other metrics (a report from before them lacks these)
        figures |= {"mrr": ndcg * 0.8, "map@10": ndcg * 0.7, "recall@10": hr}
        figures["coverage@10"] = 0.05
        figures["ndcg@10_se"] = ndcg / 9
        figures |= {"omega_minus_ndcg@10": 0.0712 - ndcg, "omega_minus_ndcg@10_se": 0.004}
    return figures


def _result(*, attack: bool = True, timeline: bool = True) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    start = 1_104_537_600.0  # 2005-01-01
    result: dict[str, Any] = {
        "dataset": "../shared/datasets/ml-latest-small",
        "format": "ml-latest",
        "viewers": 671,
        "items": 9066,
        "events": np.int64(100_004),  # numpy scalars must come out as plain JSON numbers
        "seed": 0,
        "cells": 64,
        "omega": _figures(0.1311, np.float64(0.0712)),
        "baselines": {
            "popularity": _figures(0.0581, 0.0301),
            "local_only": _figures(0.0909, 0.0481),
            "als": _figures(0.0730, 0.0383),
            "item_knn": {"skipped": 1.0},
            "transitions": _figures(0.1222, 0.0683, standard=False),
        },
        "push_bytes_median": 812.0,
        "pull_bytes_median": 3_950.0,
        "push_bytes_p95": 1_010.0,
        "pull_bytes_p95": 5_050.0,
        "raw_items_sent": 0,
        "event_records_sent": 0,
        "search_strings_sent": 0,
        "requests_inspected": 24_690,
        "syncs": 12_345,
        "rounds": 48,
        "released_patterns": 1_536,
        "sync_bytes": {
            "push": rng.normal(812, 90, 400).clip(200).astype(np.int64),  # an ndarray
            "pull": [int(v) for v in rng.normal(3_950, 600, 400).clip(500)],
        },
        "wall_s": 431.7,
        "timings": {"embed_s": 41.2, "omega_s": 212.9, "nan_s": math.nan},
    }
    if timeline:
        result["timeline"] = [
            {
                "ts": start + i * 30 * DAY,
                "viewers": 60 * (i + 1),
                "omega_ndcg@10": 0.02 + 0.005 * i,
                "local_only_ndcg@10": 0.02 + 0.0025 * i,
                "omega_hr@10": 0.04 + 0.01 * i,
                "local_only_hr@10": 0.04 + 0.005 * i,
            }
            for i in range(11)
        ]
    if attack:
        result["attack"] = {
            "kind": "promote-item",
            "attackers": 0.33,
            "target_item": "2571",
            "target_title": "Matrix, The (1999)",
            "ndcg@10_clean": 0.0712,
            "ndcg@10_attacked": 0.0671,
            "hr@10_clean": 0.1311,
            "hr@10_attacked": 0.1252,
            "target_exposure_clean": 0.012,
            "target_exposure_attacked": 0.019,
        }
    return result


def _text(table: Table) -> str:
    console = Console(record=True, width=160, color_system=None)
    console.print(table)
    return console.export_text()


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """One full report for the tests that only read it (rendering costs ~1 s)."""
    out = tmp_path_factory.mktemp("full") / "nested" / "report"  # created on demand
    return out, write_report(_result(), out)


def test_full_report_writes_json_markdown_and_three_plots(
    full_report: tuple[Path, list[Path]],
) -> None:
    out, written = full_report

    assert [p.name for p in written] == [
        "report.json",
        "report.md",
        "quality_over_time.png",
        "bytes_per_sync.png",
        "attack_exposure.png",
    ]
    assert all(p.parent == out and p.is_file() for p in written)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)
    for png in written[2:]:
        assert png.stat().st_size > 10_000
        width, height = _png_size(png)
        assert 400 <= width <= 1200
        assert 300 <= height <= 700


def test_json_round_trips_with_numpy_values_made_plain(
    full_report: tuple[Path, list[Path]],
) -> None:
    result = _result()
    loaded = json.loads((full_report[0] / "report.json").read_text())

    assert loaded["events"] == 100_004
    assert loaded["omega"]["ndcg@10"] == pytest.approx(0.0712)
    assert loaded["sync_bytes"]["push"] == result["sync_bytes"]["push"].tolist()
    assert loaded["timings"]["nan_s"] is None  # strict JSON has no NaN
    assert loaded["attack"] == result["attack"]
    assert loaded["timeline"] == result["timeline"]


def test_markdown_holds_the_key_figures(full_report: tuple[Path, list[Path]]) -> None:
    md = (full_report[0] / "report.md").read_text()

    for expected in (
        "ml-latest-small",
        "| viewers | 671 |",
        "| events | 100,004 |",
        "7 min 12 s",
        "| model | NDCG@10 | ± SE | NDCG@10 pess. | HR@10 | HR@10 pess. | MRR | MAP@10 | "
        "Recall@10 | coverage@10 | × local-only |",
        "| **Omega (federated)** | 0.0712 | 0.0079 | 0.0641 | 0.1311 | 0.1180 | 0.0570 | "
        "0.0498 | 0.1311 | 0.0500 | 1.48× |",
        "| local-only (federation off) | 0.0481 | 0.0053 | 0.0433 | 0.0909 | 0.0818 |",
        "| ALS (centralised ref.) | 0.0383 |",
        "| co-watch transitions (centralised ref.) | 0.0683 | — | 0.0615 | 0.1222 | 0.1100 | "
        "— | — | — | — | 1.42× |",
        "| item-kNN (centralised ref.) | skipped |",
        "paired on the same viewers",
        "local-only (federation off) +0.0231 ± 0.0040; popularity +0.0411 ± 0.0040; ALS "
        "(centralised ref.) +0.0329 ± 0.0040.",
        "| push bytes (median) | 812 B | ≤ 1 KB | met |",
        "| pull bytes (p95) | 5,050 B |",
        "| requests inspected | 24,690 |",
        "| raw item ids sent | 0 | 0 | met |",
        "| search strings sent | 0 | 0 | met |",
        "Nothing private left the TVs.",
        "## Attack: promote-item, 33% attackers",
        "0.0712 → 0.0671 (-5.8%)",
        "0.0120 → 0.0190 (1.58×)",
        "Matrix, The (1999) (`2571`)",
        "[Quality over simulated time](quality_over_time.png)",
        "[Bytes per sync](bytes_per_sync.png)",
        "[Exposure under attack](attack_exposure.png)",
    ):
        assert expected in md, expected


def test_missing_sections_skip_their_plots_and_lines(tmp_path: Path) -> None:
    result = _result(attack=False, timeline=False)
    result["sync_bytes"]["pull"] = []
    written = write_report(result, tmp_path)

    assert [p.name for p in written] == ["report.json", "report.md", "bytes_per_sync.png"]
    md = (tmp_path / "report.md").read_text()
    assert "Attack" not in md
    assert "quality_over_time.png" not in md
    assert "attack_exposure.png" not in md
    assert "[Bytes per sync](bytes_per_sync.png)" in md


def test_a_bare_result_still_gives_json_and_markdown(tmp_path: Path) -> None:
    written = write_report({"dataset": "synthetic", "viewers": 3}, tmp_path)

    assert [p.name for p in written] == ["report.json", "report.md"]
    assert "| viewers | 3 |" in (tmp_path / "report.md").read_text()


def test_a_rerun_removes_plots_whose_section_is_gone(tmp_path: Path) -> None:
    write_report(_result(), tmp_path)
    assert (tmp_path / "attack_exposure.png").exists()

    write_report(_result(attack=False), tmp_path)

    assert not (tmp_path / "attack_exposure.png").exists()
    assert (tmp_path / "quality_over_time.png").exists()


def test_figures_that_miss_their_targets_are_flagged() -> None:
    result = _result()
    result["push_bytes_median"] = 1_300.0
    result["raw_items_sent"] = 2
    result["attack"]["target_exposure_attacked"] = 0.05

    md = render_markdown(result)
    summary = _text(summary_table(result))

    assert "| push bytes (median) | 1,300 B | ≤ 1 KB | MISSED |" in md
    assert "**LEAK: raw item ids sent**" in md
    assert "0.0120 → 0.0500 (4.17×) | ≤ 2× clean | MISSED |" in md
    assert summary.count("MISSED") == 3


def test_the_summary_says_which_interaction_was_held_out() -> None:
    result = _result()
    assert "Each viewer's last interaction held out" in render_markdown(result)
    result["holdout"] = "second-to-last (validation)"
    md = render_markdown(result)
    assert "| held out | second-to-last (validation) |" in md
    assert "Each viewer's second-to-last interaction held out" in md
    assert "second-to-last interaction held out" in _text(quality_table(result))


def test_the_privacy_section_shows_what_the_reports_compose_to() -> None:
    result = _result()
    result.update(
        frequency_reports_sent=13_891,
        report_epsilon=8.0,
        epsilon_per_viewer_median=96.0,
        epsilon_per_viewer_max=1_264.0,
    )
    line = "13,891 at ε = 8; per viewer, composed: median 96, max 1264"
    assert line in render_markdown(result)
    assert line in _text(summary_table(result))


def test_a_file_is_not_a_report_directory(tmp_path: Path) -> None:
    target = tmp_path / "report"
    target.write_text("not a folder")

    with pytest.raises(ConfigError, match="is a file, not a directory"):
        write_report(_result(), target)
    assert target.read_text() == "not a folder"


def test_an_unwritable_directory_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")

    with pytest.raises(ConfigError, match="cannot write the report to"):
        write_report(_result(), blocker / "report")


def test_check_report_directory_creates_it_or_fails_clearly(tmp_path: Path) -> None:
    made = check_report_directory(tmp_path / "a" / "b")
    assert made.is_dir()
    assert list(made.iterdir()) == []  # the probe file is gone

    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file"):
        check_report_directory(tmp_path / "file")
    with pytest.raises(ConfigError, match="cannot write the report"):
        check_report_directory(tmp_path / "file" / "sub")


def test_a_value_json_cannot_hold_writes_nothing(tmp_path: Path) -> None:
    result = _result()
    result["timings"]["when"] = object()

    with pytest.raises(InputError, match=r"result\.timings\.when"):
        write_report(result, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_quality_table_rows_and_ratio_to_local_only() -> None:
    table = quality_table(_result())
    text = _text(table)

    assert [c.header for c in table.columns] == [
        "model",
        "NDCG",
        "pess.",
        "HR",
        "pess.",
        "MRR",
        "MAP",
        "cov.",
        "× local",
    ]
    assert table.row_count == 6  # Omega + 5 baselines
    assert "671 viewers" in text
    omega_line = next(line for line in text.splitlines() if "Omega" in line)
    assert "0.0712" in omega_line
    assert "1.48×" in omega_line
    assert "skipped" in next(line for line in text.splitlines() if "item-kNN" in line)


def test_summary_table_lists_bytes_privacy_and_attack() -> None:
    text = _text(summary_table(_result()))

    for expected in (
        "push bytes (median)",
        "812 B",
        "raw item ids sent",
        "promote-item, 33% attackers",
        "Matrix, The (1999)",
        "under attack: NDCG@10",
        "7 min 12 s",
    ):
        assert expected in text, expected
    assert "MISSED" not in text
    assert "attack" not in _text(summary_table(_result(attack=False)))


def test_degenerate_sections_still_draw(tmp_path: Path) -> None:
    result = _result()
    result["timeline"] = [
        {"ts": 1_700_000_000, "omega_ndcg@10": math.nan, "local_only_ndcg@10": 0.01}
    ]
    result["sync_bytes"] = {"push": [700] * 50, "pull": None}
    result["attack"].update(target_exposure_clean=0.0, target_exposure_attacked=0.0)
    result["baselines"]["als"] = {"hr@10": math.nan, "ndcg@10": math.nan}

    written = write_report(result, tmp_path)

    assert [p.name for p in written][2:] == [
        "quality_over_time.png",
        "bytes_per_sync.png",
        "attack_exposure.png",
    ]
    assert all(p.read_bytes()[:8] == PNG_SIGNATURE for p in written[2:])
    assert "| ALS (centralised ref.) | skipped |" in (tmp_path / "report.md").read_text()


def test_a_new_tvs_first_screen_is_reported_without_a_verdict() -> None:
    result = _result()
    result["attack"].update(target_on_new_tv_clean=False, target_on_new_tv_attacked=True)

    md = render_markdown(result)

    assert "| target on a new TV's first screen | no → yes |  |  |" in md
    assert "first screen" not in render_markdown(_result(attack=False))


def test_the_quality_plot_shows_each_points_viewers_and_sets_few_apart() -> None:
    result = _result(attack=False)
    result["dataset"] = "/data/" + "ml-latest-small-with-a-very-long-name-for-a-title" * 2
    for point, viewers in zip(result["timeline"], [3, 8, *range(30, 300, 30)], strict=True):
        point["viewers"] = viewers
    figure = quality_over_time_figure(result)
    assert figure is not None
    (ax,) = figure.axes
    labels = [t.get_text() for t in ax.texts]
    assert labels[:3] == ["n=3", "n=8", "n=30"] and len(labels) == len(result["timeline"])
    (omega,) = [line for line in ax.get_lines() if line.get_label() == "Omega"]
    assert len(omega.get_xdata()) == len(result["timeline"]) - 2  # the line skips n < 20
    assert any(f"fewer than {FEW_VIEWERS}" in t.get_text() for t in ax.get_legend().get_texts())
    figure.canvas.draw()  # the title, however long the dataset's name, stays on the figure
    title = ax.title.get_window_extent()
    assert title.x0 >= 0 and title.x1 <= figure.bbox.width and title.y1 <= figure.bbox.height


def test_the_attack_section_says_its_figures_are_over_the_honest_viewers() -> None:
    result = _result()
    result["attack"]["honest_viewers"] = 450

    md = render_markdown(result)

    assert "Measured on the 450 honest viewers only; the clean fleet is the one" in md
