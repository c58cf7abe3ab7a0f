"""The Prometheus alert rules and the Grafana dashboard under ``deploy/``, checked with
Prometheus' own ``promtool``: the rules load, their unit tests pass (each alert fires on
a synthetic series and stays silent on a healthy one), and every dashboard query is
valid PromQL. That they use only metrics the server exposes is checked against a live
scrape in ``tests/constellation/test_constellation_metrics.py``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts_test.yaml"
DASHBOARD = DEPLOY / "grafana" / "omega.json"
SEVERITIES = {"critical", "warning", "info"}
#: What Grafana puts in place of the dashboard's variables, for promtool to parse.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__range": "6h",
    "$job": ".+",
    "$budget": "160",
    "$window_days": "365",
}


def _promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_queries() -> list[str]:
    """Every query of every panel of ``deploy/grafana/omega.json``."""
    return [
        target["expr"] for panel in _dashboard()["panels"] for target in panel.get("targets", [])
    ]


# -- alert rules ----------------------------------------------------------------------------
def test_promtool_accepts_the_rules(promtool: str) -> None:
    done = _promtool(promtool, "check", "rules", RULES.name, cwd=RULES.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in done.stdout


def test_the_rules_unit_tests_pass(promtool: str) -> None:
    done = _promtool(promtool, "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_unit_tests_catch_a_rule_that_no_longer_fires(promtool: str, tmp_path: Path) -> None:
    """The control: with one threshold made impossible, promtool reports that alert."""
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    broken = RULES.read_text().replace("expr: omega_storage_up == 0", "expr: omega_storage_up < 0")
    assert broken != RULES.read_text()
    (tmp_path / RULES.name).write_text(broken)
    done = _promtool(promtool, "test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert done.returncode != 0
    assert "alertname: OmegaStorageDown" in done.stdout + done.stderr


def test_every_alert_says_what_to_do_and_how_bad() -> None:
    for rule in _rules():
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert len(rule["annotations"]["description"]) > 80, rule["alert"]


def test_every_alert_fires_in_a_unit_test_beside_a_series_where_it_does_not() -> None:
    """Each alert has a test where it fires for one instance (or job) and the test's
    input also holds another instance whose series must not fire it (promtool compares
    the firing alerts exactly, so a spurious one fails the test)."""
    fired: dict[str, bool] = {}
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        sources = {_source(series["series"]) for series in test["input_series"]}
        for case in test["alert_rule_test"]:
            expected = case.get("exp_alerts") or []
            firing = {_source_of(alert["exp_labels"]) for alert in expected}
            if expected:
                fired[case["alertname"]] = fired.get(case["alertname"], False) or bool(
                    sources - firing
                )
    names = {rule["alert"] for rule in _rules()}
    assert set(fired) == names, f"alerts without a firing test: {sorted(names - set(fired))}"
    assert all(fired.values()), f"alerts never tested beside a quiet series: {fired}"


def _source(series: str) -> tuple[str, str]:
    """(job, instance) of a promtool input series such as ``name{job="a",instance="b"}``."""
    labels = dict(re.findall(r'(\w+)="([^"]*)"', series))
    return labels.get("job", ""), labels.get("instance", "")


def _source_of(labels: dict[str, str]) -> tuple[str, str]:
    return labels.get("job", ""), labels.get("instance", "")


# -- the Grafana dashboard ------------------------------------------------------------------
def test_the_dashboard_asks_for_a_prometheus_datasource() -> None:
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["job"]["datasource"]["uid"] == "${datasource}"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 15
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


def test_the_dashboard_panels_have_distinct_ids_and_fit_the_grid() -> None:
    panels = _dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (grid["x"] + dx, grid["y"] + dy) for dx in range(grid["w"]) for dy in range(grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_the_dashboard_covers_what_an_operator_watches() -> None:
    titles = " ".join(p["title"] for p in _dashboard()["panels"]).lower()
    for subject in (
        "devices",
        "syncs",
        "latency",
        "traffic",
        "errors",
        "rate-limited",
        "rounds",
        "release age",
        "helper",
        "storage connections",
        "ε",
    ):
        assert subject in titles, subject


def test_every_dashboard_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    """The queries, with Grafana's variables filled in, as recording rules for promtool."""
    rules = []
    for n, expr in enumerate(dashboard_queries()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr.replace("${1}", ""), f"an unknown variable in {expr}"
        rules.append({"record": f"omega:dashboard_query_{n}", "expr": expr})
    (tmp_path / "queries.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    done = _promtool(promtool, "check", "rules", "queries.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("bad", ["sum(rate(omega_syncs_total[5m])", "omega_syncs_total{"])
def test_promtool_refuses_a_broken_query(promtool: str, tmp_path: Path, bad: str) -> None:
    """The control for the check above."""
    (tmp_path / "queries.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "d", "rules": [{"record": "x:y", "expr": bad}]}]})
    )
    assert _promtool(promtool, "check", "rules", "queries.yaml", cwd=tmp_path).returncode != 0
