"""``/metrics`` of a real server that a small fleet has used: what each metric counts,
that ``promtool check metrics`` finds nothing to lint, and that the Grafana dashboard and
the alert rules under ``deploy/`` ask only for metrics the server exposes."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import pytest
import yaml
from _constellation_harness import (
    Device,
    ServerProcess,
    preference,
    publish_codebook,
    run_round,
    start_server,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from prometheus_client.parser import text_string_to_metric_families

from omega.constellation import Settings, create_app
from omega.constellation.doors.asgi import call_app
from omega.constellation.metrics import Metrics
from omega.helper import HelperService, HelperThread
from omega.helper.service import SECRET_FILE
from omega.protocol.messages import FrequencyReport
from omega.protocol.shares import make_shared_report

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RATE_LIMIT = 5


@dataclass
class Fleet:
    """What the test's fleet did, and the server's scrape afterwards."""

    server: ServerProcess
    helper: HelperThread
    scrape: str
    devices: int
    syncs: int
    received: int  # request body bytes the devices sent to the sync route
    sent: int  # answer body bytes they got back
    shares: int
    viewer_ids: list[str]
    limited: int  # requests refused for the viewer rate limit
    round_started: float  # wall time just before the round that released


def value(scrape: str, name: str, **labels: str) -> float:
    """One sample of a scrape (its name as exposed, e.g. ``…_total``)."""
    for family in text_string_to_metric_families(scrape):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"{name}{labels} is not in the scrape")


def sample_names(scrape: str) -> set[str]:
    return {s.name for f in text_string_to_metric_families(scrape) for s in f.samples}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A server counting two-server reports with a real helper (on loopback, in this
    process), three devices that push, sync and send a report each, one round, and one
    device over its rate limit."""
    helper_dir = tmp_path_factory.mktemp("helper")
    service = HelperService.open(helper_dir)
    with HelperThread(service) as helper:
        server = start_server(
            tmp_path_factory.mktemp("metrics"),
            OMEGA_HELPER_URL=helper.url,
            OMEGA_HELPER_SECRET_FILE=str(helper_dir / SECRET_FILE),
            OMEGA_RATE_LIMIT=str(RATE_LIMIT),
        )
        try:
            yield _drive(server, helper, service)
        finally:
            server.stop()


def _drive(server: ServerProcess, helper: HelperThread, service: HelperService) -> Fleet:
    key = X25519PublicKey.from_public_bytes(service.info().public_key)
    codebook_id = publish_codebook(server)
    received = sent = 0
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        devices = [Device.register(client) for _ in range(3)]
        for device in devices:
            push = device.push([preference(7), preference(8)], codebook_id=codebook_id)
            push = msgspec.structs.replace(push, shares=[make_shared_report(3, 64, key)])
            answer = device.sync_raw(push)
            assert answer.status_code == 200, answer.text
            received += len(answer.request.content)
            sent += len(answer.content)
        round_started = time.time()
        assert run_round(server)["result"]["status"] == "released"
        answer = devices[0].sync_raw(since=0)
        received += len(answer.request.content)
        sent += len(answer.content)
        statuses = [
            client.get(f"/api/omega/viewers/{devices[1].viewer_id}", headers=devices[1].auth)
            for _ in range(RATE_LIMIT + 1)
        ]
        limited = sum(1 for answer in statuses if answer.status_code == 429)
        assert limited >= 1
        scrape = client.get("/metrics").text
    ids = [d.viewer_id for d in devices]
    return Fleet(server, helper, scrape, 3, 4, received, sent, 3, ids, limited, round_started)


def test_devices_syncs_and_their_bytes_are_counted(fleet: Fleet) -> None:
    scrape = fleet.scrape
    assert value(scrape, "omega_registered_devices") == fleet.devices
    assert value(scrape, "omega_active_devices") == fleet.devices
    assert value(scrape, "omega_syncs_total") == fleet.syncs
    assert value(scrape, "omega_sync_received_bytes_total") == fleet.received
    assert value(scrape, "omega_sync_sent_bytes_total") == fleet.sent
    assert value(scrape, "omega_storage_up") == 1


def test_sync_latency_buckets_resolve_the_50_ms_target(fleet: Fleet) -> None:
    """Bucket bounds at most 10 ms apart from 10 to 60 ms, 50 ms among them, so a p95
    read from them is within a few ms of the target."""
    route = {"route": "/api/omega/sync", "method": "POST"}
    name = "omega_http_request_duration_seconds_bucket"
    bounds = sorted(
        float(s.labels["le"])
        for f in text_string_to_metric_families(fleet.scrape)
        for s in f.samples
        if s.name == name and s.labels.get("route") == route["route"]
    )
    assert 0.05 in bounds
    near = [b for b in bounds if 0.01 <= b <= 0.06]
    assert max(b - a for a, b in itertools.pairwise(near)) <= 0.0100001
    assert value(fleet.scrape, "omega_http_request_duration_seconds_count", **route) == fleet.syncs


def test_rate_limited_requests_are_counted_by_limit(fleet: Fleet) -> None:
    limited = fleet.limited
    assert value(fleet.scrape, "omega_rate_limited_requests_total", limit="viewer") == limited
    assert value(fleet.scrape, "omega_rate_limited_requests_total", limit="registration") == 0
    assert value(fleet.scrape, "omega_rejections_total", reason="rate_limited") == limited
    labels = {"route": "/api/omega/viewers/{viewer_id}", "method": "GET", "status": "429"}
    assert value(fleet.scrape, "omega_http_requests_total", **labels) == limited


def test_rounds_releases_and_report_epsilon_are_counted(fleet: Fleet) -> None:
    scrape = fleet.scrape
    assert value(scrape, "omega_federation_rounds_total", status="released") == 1
    assert value(scrape, "omega_federation_rounds_total", status="failed") == 0
    assert value(scrape, "omega_federation_round_duration_seconds_count") == 1
    assert value(scrape, "omega_federation_rounds_since_release") == 0
    assert value(scrape, "omega_release_version") >= 1
    # The watcher saw the new version after the round began (the alert on release age).
    assert value(scrape, "omega_release_seen_timestamp_seconds") >= fleet.round_started
    assert value(scrape, "omega_released_patterns") == 2
    assert value(scrape, "omega_reports_received_total", kind="shared") == fleet.shares
    # Each two-server report costs its device the servers' noise ε (4 by default).
    assert value(scrape, "omega_report_epsilon_spent_total", kind="shared") == 4.0 * fleet.shares


def test_reports_are_counted_by_kind_each_push_adding_to_the_same_series() -> None:
    metrics = Metrics()
    olh = [FrequencyReport(seed=1, value=2, buckets=8, epsilon=0.5)] * 3
    for _ in range(2):
        metrics.reports_accepted(olh, 4, shared_epsilon=2.0)
    metrics.reports_accepted([], 1, shared_epsilon=2.0)
    scrape = metrics.render().decode()
    assert value(scrape, "omega_reports_received_total", kind="olh") == 6
    assert value(scrape, "omega_report_epsilon_spent_total", kind="olh") == 3.0
    assert value(scrape, "omega_reports_received_total", kind="shared") == 9
    assert value(scrape, "omega_report_epsilon_spent_total", kind="shared") == 18.0


def test_storage_connections_are_reported(fleet: Fleet) -> None:
    scrape = fleet.scrape
    assert value(scrape, "omega_db_pool_size") >= 1
    assert 1 <= value(scrape, "omega_db_pool_connections") <= value(scrape, "omega_db_pool_size")
    assert value(scrape, "omega_db_pool_in_use") == 0  # the scrape's own read has ended
    assert value(scrape, "omega_db_write_queue_length") == 0


def test_the_helper_probe_follows_the_helper(fleet: Fleet) -> None:
    assert value(fleet.scrape, "omega_helper_up") == 1
    assert value(fleet.scrape, "omega_helper_probe_failures_total") == 0


def test_a_helper_that_does_not_answer_reads_as_down(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with socket.socket() as closed:  # a port nothing listens on once this closes
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    server = start_server(
        tmp_path_factory.mktemp("no-helper"), OMEGA_HELPER_URL=f"http://127.0.0.1:{port}"
    )
    try:
        scrape = httpx.get(server.base_url + "/metrics", timeout=30).text
        again = httpx.get(server.base_url + "/metrics", timeout=30).text
    finally:
        server.stop()
    assert value(scrape, "omega_helper_up") == 0
    assert value(again, "omega_helper_probe_failures_total") == 2


def test_a_server_without_a_helper_exports_no_helper_gauge(client: httpx.Client) -> None:
    assert "omega_helper_up" not in sample_names(client.get("/metrics").text)


def _promtool_check(promtool: str, scrape: str) -> subprocess.CompletedProcess[str]:
    """``promtool check metrics`` of ``scrape``."""
    return subprocess.run(
        [promtool, "check", "metrics"],
        input=scrape,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_promtool_finds_nothing_to_lint(fleet: Fleet, promtool: str) -> None:
    done = _promtool_check(promtool, fleet.scrape)
    findings = done.stdout + done.stderr
    assert done.returncode == 0 and not findings.strip(), findings


def test_the_helpers_metrics_pass_promtool_too(fleet: Fleet, promtool: str) -> None:
    scrape = httpx.get(fleet.helper.url + "/metrics", timeout=30).text
    assert "omega_helper_batches_total" in scrape
    done = _promtool_check(promtool, scrape)
    findings = done.stdout + done.stderr
    assert done.returncode == 0 and not findings.strip(), findings


def test_promtool_lints_a_badly_named_metric(promtool: str) -> None:
    """The control for the check above."""
    bad = "# HELP omega_wait_milliseconds W.\n# TYPE omega_wait_milliseconds counter\n"
    done = _promtool_check(promtool, bad + "omega_wait_milliseconds 1\n")
    assert done.returncode != 0 and 'should have "_total" suffix' in done.stderr


def _metric_names(text: str) -> set[str]:
    return set(re.findall(r"\bomega_[a-z0-9_]+", text))


def test_the_dashboard_queries_only_exposed_metrics(fleet: Fleet) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "omega.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = set().union(*(_metric_names(q) for q in queries))
    assert len(used) >= 20
    assert used <= sample_names(fleet.scrape), sorted(used - sample_names(fleet.scrape))


def test_the_alert_rules_watch_only_exposed_metrics(fleet: Fleet) -> None:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())["groups"]
    used = set().union(*(_metric_names(r["expr"]) for g in groups for r in g["rules"]))
    assert used <= sample_names(fleet.scrape), sorted(used - sample_names(fleet.scrape))


def test_the_metrics_docs_name_only_exposed_metrics(fleet: Fleet) -> None:
    """docs/deploy.md's table of metrics, against the scrape (the HTTP/3 door's counters
    appear only with that door open, the helper's on the helper)."""
    docs = (DEPLOY.parent / "docs" / "deploy.md").read_text()
    table = docs[docs.index("### The metrics") :]
    table = table[: table.index("\n\n", table.index("| metric |"))]
    named = {
        name
        for name in _metric_names(table)
        if not name.startswith(("omega_http3_", "omega_helper_reports", "omega_helper_batches"))
    }
    families = {f.name for f in text_string_to_metric_families(fleet.scrape)}
    exposed = sample_names(fleet.scrape) | families
    assert len(named) >= 25
    assert named <= exposed, sorted(named - exposed)


def test_no_label_carries_a_viewer_id(fleet: Fleet) -> None:
    for viewer_id in fleet.viewer_ids:
        assert viewer_id not in fleet.scrape


def test_a_clients_made_up_methods_do_not_grow_the_label_set(tmp_path: Path) -> None:
    """The HTTP/3 door (and uvicorn's h11) pass any method a client sends into the app:
    each must not become a series of its own. Through the doors' own ASGI entry."""

    async def scrape() -> str:
        settings = Settings(
            data_dir=tmp_path,
            admin_token="metrics-admin-token-0123",
            federation_interval=0,
            gc_freeze=False,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            for n in range(50):
                await call_app(app, f"BREW{n}", "/api/omega/sync", headers={})
            await call_app(app, "GET", "/healthz", headers={})
            return (await call_app(app, "GET", "/metrics", headers={})).body.decode()

    text = asyncio.run(scrape())
    assert "BREW" not in text
    requests = {
        (s.labels["method"], s.labels["route"]): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "omega_http_requests_total"
    }
    assert requests[("other", "/api/omega/sync")] == 50
    assert ("GET", "/healthz") in requests
