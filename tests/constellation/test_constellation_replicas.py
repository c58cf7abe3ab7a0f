"""Two real server processes on one PostgreSQL database behave as one service: the rate
limit holds across them, events reach the listeners of both, a retry landing on the other
replica applies once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _constellation_harness import (
    Device,
    preference,
    publish_codebook,
    stats,
)
from _replicas import replicas
from prometheus_client.parser import text_string_to_metric_families

from omega.protocol import codec
from omega.protocol.messages import PushAck
from omega.storage import PostgresStorage

pytestmark = pytest.mark.postgres

#: No keep-alive pings on the event streams, so a stream that hears nothing times out.
_QUIET = {"OMEGA_SSE_PING_INTERVAL": "3600"}
_SSE_TIMEOUT = httpx.Timeout(10.0, read=20.0)


def _events(sse: httpx.Response) -> Iterator[dict[str, str]]:
    """The stream's events, as field -> value."""
    event: dict[str, str] = {}
    for line in sse.iter_lines():
        if not line:
            if event:
                yield event
            event = {}
            continue
        name, _, value = line.partition(":")
        event[name] = value.removeprefix(" ")


@pytest.mark.parametrize("store", ["postgres", "redis"])
def test_the_rate_limit_holds_across_replicas(
    tmp_path: Path, postgres_db_url: str, store: str, request: pytest.FixtureRequest
) -> None:
    # The default with a PostgreSQL store is that store; Redis when a URL names one.
    env = {"OMEGA_RATE_LIMIT": "5"}
    if store == "redis":
        env["OMEGA_RATE_LIMIT_URL"] = request.getfixturevalue("redis_url")
    with replicas(tmp_path, postgres_db_url, **env) as (a, b):
        with httpx.Client(base_url=a.base_url, timeout=30) as on_a:
            device = Device.register(on_a)
        codes = []
        with httpx.Client(timeout=30) as client:
            for n in range(7):  # A, B, A, B …: each replica alone has seen at most 4
                base = (a, b)[n % 2].base_url
                answer = client.get(f"{base}/api/omega/codebook", headers=device.auth)
                codes.append(answer.status_code)
        assert 429 not in codes[:5] and codes[5:] == [429, 429], codes
        assert int(answer.headers["retry-after"]) >= 1
        assert "over 5 requests per 60 s" in answer.json()["detail"]


def test_a_release_committed_elsewhere_reaches_listeners_of_every_replica(
    tmp_path: Path, postgres_db_url: str
) -> None:
    # Polls an hour apart: only the notification can bring the release within the test.
    env = {"OMEGA_RELEASE_POLL_INTERVAL": "3600", **_QUIET}
    with (
        replicas(tmp_path, postgres_db_url, **env) as (a, b),
        httpx.Client(base_url=a.base_url, timeout=_SSE_TIMEOUT) as on_a,
        httpx.Client(base_url=b.base_url, timeout=_SSE_TIMEOUT) as on_b,
    ):
        first, second = Device.register(on_a), Device.register(on_b)
        with (
            on_a.stream("GET", "/api/omega/events", headers=first.auth) as sse_a,
            on_b.stream("GET", "/api/omega/events", headers=second.auth) as sse_b,
        ):
            assert sse_a.status_code == sse_b.status_code == 200
            # A worker elsewhere (here: this test) commits release 1.
            store = PostgresStorage(postgres_db_url)
            try:
                assert store.commit_release(
                    base_version=0, upserted=[], removed=[], trends=[], now=1.0
                )
            finally:
                store.close()
            for sse in (sse_a, sse_b):
                event = next(e for e in _events(sse) if e.get("event") == "release")
                assert event["id"] == "1"


def test_an_announcement_on_one_replica_reaches_listeners_of_the_other(
    tmp_path: Path, postgres_db_url: str
) -> None:
    with replicas(tmp_path, postgres_db_url, **_QUIET) as (a, b):
        store = PostgresStorage(postgres_db_url)
        try:
            store.commit_release(base_version=0, upserted=[], removed=[], trends=[], now=1.0)
        finally:
            store.close()
        with httpx.Client(base_url=b.base_url, timeout=_SSE_TIMEOUT) as on_b:
            listener = Device.register(on_b)
            with on_b.stream("GET", "/api/omega/events", headers=listener.auth) as sse:
                body = {"viewer_ids": [listener.viewer_id], "priority": "high"}
                answer = httpx.post(
                    a.base_url + "/api/omega/admin/announce", json=body, headers=a.admin()
                )
                assert answer.status_code == 200, answer.text
                event = next(e for e in _events(sse) if "announced" in e.get("data", ""))
        assert json.loads(event["data"])["data"] == {
            "announced": listener.viewer_id,
            "priority": "high",
        }


def test_a_retry_landing_on_the_other_replica_applies_once(
    tmp_path: Path, postgres_db_url: str
) -> None:
    with replicas(tmp_path, postgres_db_url) as (a, b):
        codebook_id = publish_codebook(a)
        with (
            httpx.Client(base_url=a.base_url, timeout=30) as on_a,
            httpx.Client(base_url=b.base_url, timeout=30) as on_b,
        ):
            device = Device.register(on_a)
            push = device.push([preference(5), preference(6)], codebook_id=codebook_id)
            before = stats(a)["pending_contributions"]
            first = device.sync(push)
            # A's answer was lost; the balancer sends the retry to B.
            device.client = on_b
            second = device.sync(push)
            third = device.post_frame("/api/omega/patterns", codec.encode(push))
        assert third.status_code == 200
        assert first.ack == second.ack == codec.decode(third.content, expect=PushAck)
        assert stats(b)["pending_contributions"] - before == 2
        assert stats(a)["pending_contributions"] == stats(b)["pending_contributions"]


def _sample_sum(text: str, *, route: str | None = None, family_has: str = "") -> float:
    """The sum of the samples of ``/metrics`` text: of the request counter's samples for
    ``route``, or of the gauge whose name contains ``family_has``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if route is not None:
                if sample.name.endswith("_total") and sample.labels.get("route") == route:
                    total += sample.value
            elif family_has in family.name and family.type == "gauge":
                total += sample.value
    return total


def test_metrics_of_one_replica_count_the_requests_of_both(
    tmp_path: Path, postgres_db_url: str
) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared), **_QUIET}
    with (
        replicas(tmp_path / "data", postgres_db_url, **env) as (a, b),
        httpx.Client(base_url=b.base_url, timeout=_SSE_TIMEOUT) as on_b,
    ):
        device = Device.register(on_b)
        for server in (a, b):  # a round that releases nothing: every gauge it moves
            answer = httpx.post(server.base_url + "/api/omega/rounds", headers=a.admin())
            assert answer.status_code == 200, answer.text
        for server, times in ((a, 3), (b, 2)):
            for _ in range(times):
                httpx.get(server.base_url + "/api/omega/codebook", headers=device.auth)
        with on_b.stream("GET", "/api/omega/events", headers=device.auth) as sse:
            assert sse.status_code == 200
            for server in (a, b):  # either replica's scrape sees all five, and B's client
                text = httpx.get(server.base_url + "/metrics").text
                assert _sample_sum(text, route="/api/omega/codebook") == 5
                assert _sample_sum(text, family_has="sse") == 1
