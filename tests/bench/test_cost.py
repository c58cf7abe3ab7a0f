"""``omega cost``: the arithmetic on a case worked by hand, the region's egress tiers,
figures from a bench's JSON, and bad input as one sentence naming the flag."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from omega.bench._cost_defaults import Figure
from omega.bench.cost import estimate_cost, load_figures
from omega.errors import ConfigError

#: Round figures for a case worked by hand: 3,600 TVs syncing hourly make 1 sync/s.
HAND = {
    "server_cpu_ms_per_sync.postgresql.http": 10.0,
    "db_cpu_ms_per_sync.postgresql": 5.0,
    "patterns_per_sync": 2.0,
    "round_cpu_ms_per_pattern": 1.0,
    "reports_per_sync": 1.0,
    "leader_cpu_ms_per_report": 2.0,
    "helper_cpu_ms_per_report": 3.0,
    "wire_bytes_per_sync.http": 1000.0,
    "db_bytes_per_viewer": 1e6,
    "db_bytes_per_pending_pattern": 1e6,
    "pending_hold_s": 60.0,
}
PRICES = {"vcpu_hour": 1.0, "db_vcpu_hour": 3.0, "storage_gb_month": 0.1, "egress_per_gb": 0.01}


def _hand(**kwargs: object) -> dict[str, object]:
    figures = {name: Figure(value, "test") for name, value in HAND.items()}
    args: dict[str, object] = {
        "viewers": 3600,
        "sync_interval": 3600.0,
        "utilisation": 0.5,
        "figures": figures,
        "prices": PRICES,
    }
    return estimate_cost(**{**args, **kwargs})  # type: ignore[arg-type]


def test_a_small_case_worked_by_hand() -> None:
    result = _hand()
    lines = {line["component"]: line for line in result["lines"]}  # type: ignore[attr-defined]
    assert result["syncs_per_s"] == 1.0
    # 1 sync/s × 10 ms = 0.01 cores; / 0.5 = 0.02 vCPU; × $1 × 730 h = $14.60.
    assert lines["constellation"]["vcpus"] == pytest.approx(0.02)
    assert lines["constellation"]["usd_month"] == pytest.approx(14.60)
    # 2 patterns/s × 1 ms + 1 report/s × 2 ms = 4 ms/s → 0.008 vCPU → $5.84.
    assert lines["workers"]["usd_month"] == pytest.approx(5.84)
    # 1 report/s × 3 ms → 0.006 vCPU → $4.38.
    assert lines["helper"]["usd_month"] == pytest.approx(4.38)
    # 1 sync/s × 5 ms → 0.01 vCPU × $3 × 730 = $21.90.
    assert lines["database CPU"]["usd_month"] == pytest.approx(21.90)
    # 3,600 viewers × 1 MB + 2 patterns/s × 60 s × 1 MB = 3.72 GB × $0.1 = $0.372.
    assert lines["database storage"]["usd_month"] == pytest.approx(0.37)
    # 1 sync/s × 2,628,000 s × 1,000 B = 2.628 GB × $0.01 = $0.026.
    assert lines["egress"]["usd_month"] == pytest.approx(0.03)
    assert result["total_usd_month"] == pytest.approx(47.12, abs=0.01)
    assert str(result["bottleneck"]).startswith("database CPU: 46%")
    assert "1.0 syncs/s × 10.0 ms" in lines["constellation"]["arithmetic"]


def test_connections_held_open_can_decide_the_servers() -> None:
    figures = {name: Figure(value, "test") for name, value in HAND.items()}
    figures["server_kb_per_connection.http"] = Figure(1000.0, "test")
    result = _hand(held=1.0, figures=figures)
    line = result["lines"][0]  # type: ignore[index]
    # 3,600 × 1,000 KB × 1,024 = 3.6864 GB / 4 GB per vCPU / 0.5 = 1.8432 vCPU (> 0.02
    # for the CPU) × $1 × 730 h = $1,345.54.
    assert line["component"] == "constellation (memory)"
    assert line["vcpus"] == pytest.approx(1.843, abs=0.001)
    assert line["usd_month"] == pytest.approx(1345.54)
    assert result["held_connections"] == 3600


def test_egress_follows_the_regions_tiers() -> None:
    # 20,480 GB a month: the first 10,240 at $0.09, the next 10,240 at $0.085.
    per_sync = 20_480e9 / 2_628_000
    prices = {**PRICES, "egress_per_gb": None}
    figures = {name: Figure(value, "test") for name, value in HAND.items()}
    figures["wire_bytes_per_sync.http"] = Figure(per_sync, "test")
    result = estimate_cost(
        viewers=3600, sync_interval=3600, figures=figures, prices=prices, utilisation=0.5
    )
    egress = next(line for line in result["lines"] if line["component"] == "egress")
    assert egress["usd_month"] == pytest.approx(10_240 * 0.09 + 10_240 * 0.085, abs=0.01)


def test_the_shipped_figures_say_where_they_came_from() -> None:
    result = estimate_cost(viewers=1_000_000, sync_interval=1800)
    assert result["total_usd_month"] > 0
    assert all(entry["source"] for entry in result["figures"].values())
    assert set(result["prices"]["sources"]) == {
        "vcpu_hour",
        "gb_per_vcpu",
        "db_vcpu_hour",
        "storage_gb_month",
        "egress",
    }


def test_a_server_bench_json_replaces_its_figures(tmp_path: Path) -> None:
    run = {
        "storage": "postgresql (embedded, durable)",
        "transport": "grpc",
        "server_cpu_ms_per_sync": 1.5,
        "db_cpu_ms_per_sync": 0.7,
        "wire_bytes_per_sync": 1800.0,
        "steps": [],
    }
    path = tmp_path / "server.json"
    path.write_text(json.dumps({"runs": [run]}))
    figures = load_figures([path])
    assert figures["server_cpu_ms_per_sync.postgresql.grpc"].value == 1.5
    assert figures["db_cpu_ms_per_sync.postgresql"].value == 0.7
    assert str(path) in figures["wire_bytes_per_sync.grpc"].source


def test_a_figures_file_with_an_unknown_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "figures.json"
    path.write_text(json.dumps({"cpu_per_sync": 1.0}))
    with pytest.raises(ConfigError, match="unknown figure 'cpu_per_sync'"):
        load_figures([path])


OMEGA = [sys.executable, "-m", "omega.cli"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--viewers", "-5", "--sync-interval", "1800"), "--viewers must be"),
        (("--viewers", "1000", "--sync-interval", "0"), "--sync-interval must be > 0"),
        (("--viewers", "1000", "--sync-interval", "60", "--region", "mars"), "--region 'mars'"),
        (("--viewers", "1000", "--sync-interval", "60", "--vcpu-hour", "-1"), "--vcpu-hour"),
        (("--viewers", "1000", "--sync-interval", "60", "--transport", "ws"), "--transport"),
        (("--viewers", "1000", "--sync-interval", "60", "--held", "2"), "--held"),
        (("--viewers", "1000", "--sync-interval", "60", "--figures", "/nonexistent"), "--figures"),
    ],
)
def test_bad_input_is_one_sentence_naming_the_flag(args: tuple[str, ...], words: str) -> None:
    done = subprocess.run(
        [*OMEGA, "cost", *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode in (2, 3), done.stderr
    assert words in done.stderr
    assert "Traceback" not in done.stderr


def test_omega_cost_json() -> None:
    done = subprocess.run(
        [*OMEGA, "cost", "--viewers", "10000000", "--sync-interval", "1800", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout)
    assert [line["component"] for line in result["lines"]] == [
        "constellation",
        "workers",
        "helper",
        "database CPU",
        "database storage",
        "egress",
    ]
    assert result["total_usd_month"] == pytest.approx(
        sum(line["usd_month"] for line in result["lines"]), abs=0.05
    )
