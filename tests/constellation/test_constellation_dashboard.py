"""``/dashboard``'s parts without a browser: the sampler's arithmetic, the panels, the login
and its cookie, the JSON routes' guard, what traffic it counts, and ``/docs`` offline.
(tests/sync/test_sync_dashboard.py looks at the page in chromium.)"""

from __future__ import annotations

import re

import httpx
import pytest
from _constellation_harness import ADMIN_TOKEN, Device, ServerProcess

from omega.clock import ManualClock
from omega.constellation.dashboard import Counters, RoundRecord, Sampler, quantile, sample_of
from omega.constellation.metrics import Metrics
from omega.constellation.panels import CONTEXTS, consensus_health, heatmap, trends_by_region
from omega.constellation.traffic import Traffic
from omega.protocol.messages import ConsolidatedPattern, FrequencyReport, PatternContext, Trend
from omega.storage.base import StorageStats

INF = float("inf")


# -- the sampler ------------------------------------------------------------------------
def test_quantiles_interpolate_within_buckets_as_prometheus_does() -> None:
    buckets = [(0.01, 10.0), (0.05, 90.0), (0.1, 100.0), (INF, 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.01 + 0.04 * (50 - 10) / 80)
    assert quantile(0.95, buckets) == pytest.approx(0.05 + 0.05 * 0.5)
    assert quantile(0.05, buckets) == pytest.approx(0.005)
    assert quantile(0.5, [(0.01, 0.0), (INF, 0.0)]) is None  # nothing answered: no value
    assert quantile(0.99, [(0.01, 1.0), (INF, 10.0)]) == 0.01  # past the last finite bound


def _stats(viewers: int = 3) -> StorageStats:
    return StorageStats(
        viewers=viewers, pending_contributions=1, live_patterns=2, released_patterns=3, version=4
    )


def test_a_sample_is_the_rate_since_the_last_one() -> None:
    before = Counters(syncs=10, errors=1, push_bytes=1000, buckets=((0.01, 5.0), (INF, 5.0)))
    now = Counters(syncs=30, errors=3, push_bytes=5000, buckets=((0.01, 5.0), (INF, 25.0)))
    sample = sample_of(100.0, _stats(), 2, now, before, 4.0)
    assert (sample.syncs_per_s, sample.errors_per_s, sample.push_bytes_per_s) == (5.0, 0.5, 1000)
    assert sample.p50_ms == 10.0  # every request of the interval was slower than 10 ms
    assert (sample.devices, sample.active, sample.version) == (3, 2, 4)
    first = sample_of(100.0, _stats(), 2, now, None, 0.0)
    assert first.syncs_per_s is None and first.p95_ms is None  # no interval before it


def test_the_sampler_reads_the_servers_own_counters_into_a_bounded_ring() -> None:
    metrics, clock = Metrics(), ManualClock(1000.0)
    traffic = Traffic(clock)
    sampler = Sampler(metrics.registry, traffic, interval=1.0, capacity=3)
    sampler.take(clock.now(), _stats())
    metrics.syncs.inc(6)
    metrics.latency.labels("/api/omega/sync", "POST").observe(0.004)
    metrics.latency.labels("/api/omega/viewers", "POST").observe(2.0)  # not a sync route
    metrics.requests.labels("/api/omega/sync", "POST", "429").inc(2)
    metrics.reports_accepted(
        [FrequencyReport(seed=1, value=2, buckets=8, epsilon=0.5)] * 4, 0, shared_epsilon=0.0
    )
    traffic.push_bytes += 300
    traffic.seen("tv-1")
    clock.advance(2.0)
    sample = sampler.take(clock.now(), _stats())
    assert sample.syncs_per_s == 3.0
    assert sample.rate_limited_per_s == 1.0
    assert (sample.reports_per_s, sample.epsilon_per_s) == (2.0, 1.0)
    assert sample.push_bytes_per_s == 150.0
    assert sample.p95_ms is not None and 2.5 <= sample.p95_ms <= 5.0
    assert sample.active == 1
    clock.advance(301.0)  # quiet for longer than the active window
    assert sampler.take(clock.now(), _stats()).active == 0
    sampler.take(clock.now(), _stats())
    assert len(sampler.samples) == 3  # the oldest dropped


# -- the panels -------------------------------------------------------------------------
def _released(
    cells: tuple[int, ...], success: float, support: int, viewers: int = 4
) -> ConsolidatedPattern:
    return ConsolidatedPattern(
        id=f"p{cells}{success}",
        task="preference",
        cells=cells,
        context=PatternContext(time_bucket="evening", day_type="weekend"),
        success_rate=success,
        support=support,
        viewers=viewers,
        weight=1.0,
        version=1,
    )


def test_the_heatmap_weighs_success_by_support_per_cell_and_context() -> None:
    patterns = [_released((1, 2), 0.9, 30), _released((2,), 0.5, 10)]
    found = heatmap(7, patterns, k=4)
    row = CONTEXTS.index("evening/weekend")
    assert found.success[row] == [None, 0.9, pytest.approx(0.8), None]
    assert found.support[row] == [0, 30, 40, 0]
    assert all(s is None for r, line in enumerate(found.success) if r != row for s in line)


def test_consensus_health_says_why_clusters_were_withheld() -> None:
    last = RoundRecord(
        at=0.0,
        version=3,
        status="released",
        seconds=0.5,
        live=100,
        released=2,
        reports=0,
        trends=4,
        stats={"clusters": 9, "released": 2, "too_few_viewers": 5, "disputed": 2},
    )
    patterns = [_released((1,), 0.9, 10, viewers=8), _released((2,), 0.9, 10, viewers=3)]
    health = consensus_health(
        last, patterns, min_viewers=3, min_agreement=0.66, fusion="trimmed_mean", trim=0.25
    )
    assert (health.clusters, health.too_few_viewers, health.disputed) == (9, 5, 2)
    assert health.trimmed_votes == 2 * 2 + 2 * 0  # floor(0.25 · 8) at each end; none of 3
    none = consensus_health(None, [], min_viewers=3, min_agreement=0.66, fusion="median", trim=0.25)
    assert none.clusters is None and none.trimmed_votes == 0


def test_trends_are_grouped_by_region_strongest_first() -> None:
    trends = [
        Trend(cell=1, region="eu", score=0.5),
        Trend(cell=2, region="us", score=2.0),
        Trend(cell=3, region="eu", score=1.0),
    ]
    regions = trends_by_region(trends)
    assert [(r.region, r.trends, r.top_cells) for r in regions] == [
        ("us", 1, [2]),
        ("eu", 2, [3, 1]),
    ]


# -- the routes on a live server ------------------------------------------------------------
def test_the_json_needs_the_admin_token_or_a_login(client: httpx.Client) -> None:
    for path in ("/api/omega/dashboard/series", "/api/omega/dashboard/state"):
        assert client.get(path).status_code == 401
        wrong = client.get(path, headers={"Authorization": "Bearer " + "n" * 32})
        assert wrong.status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).is_success
        made_up = {"Cookie": "omega_dashboard=made-up"}
        assert client.get(path, headers=made_up).status_code == 401
    # The token never travels in a query string (access logs keep those).
    assert client.get(f"/api/omega/dashboard/state?token={ADMIN_TOKEN}").status_code == 400


def test_the_login_form_sets_an_http_only_session_cookie(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as browser:
        form = browser.get("/dashboard")
        assert form.status_code == 200 and 'name="token"' in form.text
        assert "plotly" not in form.text  # the page itself only after logging in
        refused = browser.post("/dashboard/login", data={"token": "n" * 32})
        assert refused.status_code == 401 and "wrong admin token" in refused.text
        assert not browser.cookies
        logged = browser.post("/dashboard/login", data={"token": ADMIN_TOKEN})
        assert logged.status_code == 303 and logged.headers["location"] == "/dashboard"
        cookie = logged.headers["set-cookie"]
        assert re.search(r"HttpOnly", cookie, re.I) and re.search(r"SameSite=strict", cookie, re.I)
        assert ADMIN_TOKEN not in cookie  # a session id, not the token
        page = browser.get("/dashboard")
        assert 'id="panel-heatmap"' in page.text
        assert "https://" not in page.text and "http://" not in page.text  # no CDN
        assert browser.get("/api/omega/dashboard/state").is_success
        browser.post("/dashboard/logout")
        browser.cookies.set("omega_dashboard", logged.cookies["omega_dashboard"])
        assert browser.get("/api/omega/dashboard/state").status_code == 401


def test_the_page_assets_come_from_the_app(client: httpx.Client) -> None:
    plotly = client.get("/dashboard/assets/plotly.min.js")
    assert plotly.status_code == 200 and len(plotly.content) > 1_000_000
    assert b"plotly.js" in plotly.content[:2000]
    assert client.get("/dashboard/assets/dashboard.js").status_code == 200
    assert client.get("/dashboard/assets/dashboard.css").status_code == 200
    missing = client.get("/dashboard/assets/..%2Fsettings.py")
    assert missing.status_code == 404


def test_the_dashboard_counts_a_devices_sync(client: httpx.Client) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    before = client.get("/api/omega/dashboard/state", headers=admin).json()
    device = Device.register(client)
    answer = device.sync_raw()
    assert answer.status_code == 200, answer.text
    after = client.get("/api/omega/dashboard/state", headers=admin).json()
    pushed = after["totals"]["push_bytes"] - before["totals"]["push_bytes"]
    pulled = after["totals"]["pull_bytes"] - before["totals"]["pull_bytes"]
    assert (pushed, pulled) == (len(answer.request.content), len(answer.content))
    assert after["totals"]["syncs"] - before["totals"]["syncs"] == 1
    assert after["active_devices"] == before["active_devices"] + 1  # this new device


def test_docs_load_swagger_ui_from_the_app_not_a_cdn(client: httpx.Client) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "cdn" not in html.lower() and "https://" not in html
        for asset in re.findall(r'(?:src|href)="([^"]+)"', html):
            if not asset.startswith("/openapi"):
                assert client.get(asset).status_code == 200, asset
