"""Events, metrics, health and API docs of a real server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _constellation_harness import (
    Device,
    ServerProcess,
    preference,
    publish_codebook,
    run_round,
    start_server,
    stats,
)

from omega.protocol.messages import ConsolidatedPattern, Trend
from omega.storage import open_storage


def _events(response: httpx.Response) -> Iterator[dict[str, str]]:
    """Parse a text/event-stream into {event, id, data} records."""
    record: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in record:
                yield record
            record = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            record[name] = value.removeprefix(" ")


def _next_release(events: Iterator[dict[str, str]], after: int) -> dict[str, str]:
    for event in events:
        if event.get("event") == "release" and int(event["id"]) > after:
            return event
    raise AssertionError("the event stream ended without a release")


def test_sse_delivers_a_release_event_when_a_round_commits(
    server: ServerProcess, client: httpx.Client
) -> None:
    codebook_id = publish_codebook(server)
    listener = Device.register(client)
    before = stats(server)["version"]
    timeout = httpx.Timeout(10.0, read=20.0)
    with client.stream("GET", "/api/omega/events", headers=listener.auth, timeout=timeout) as sse:
        assert sse.status_code == 200
        assert sse.headers["content-type"].startswith("text/event-stream")
        for _ in range(3):
            device = Device.register(client)
            device.sync(device.push([preference(50), preference(51)], codebook_id=codebook_id))
        result = run_round(server)
        assert result["version"] > before
        event = _next_release(_events(sse), before)
    data = json.loads(event["data"])
    assert data["kind"] == "release"
    assert data["version"] == result["version"] == int(event["id"])


def test_sse_delivers_a_release_committed_by_another_process(
    server: ServerProcess, client: httpx.Client
) -> None:
    listener = Device.register(client)
    timeout = httpx.Timeout(10.0, read=20.0)
    with client.stream("GET", "/api/omega/events", headers=listener.auth, timeout=timeout) as sse:
        assert sse.status_code == 200
        # Another worker commits straight into the same database; the server's watcher sees it.
        base = _commit_elsewhere(server, trends=[Trend(cell=3, region="global", score=4.5)])
        events = _events(sse)
        event = _next_release(events, base)
        following = next(events)
    assert int(event["id"]) == base + 1
    assert following["event"] == "trend"
    data = json.loads(following["data"])
    assert data["data"]["cell"] == 3
    assert data["version"] == base + 1


def test_sse_catches_up_a_client_that_missed_a_release(
    server: ServerProcess, client: httpx.Client
) -> None:
    listener = Device.register(client)
    current = stats(server)["version"]
    if current == 0:
        current = _commit_elsewhere(server, trends=[]) + 1
    headers = {**listener.auth, "Last-Event-ID": "0"}
    timeout = httpx.Timeout(10.0, read=20.0)
    with client.stream("GET", "/api/omega/events", headers=headers, timeout=timeout) as sse:
        event = _next_release(_events(sse), 0)
    assert int(event["id"]) == current


def _commit_elsewhere(server: ServerProcess, *, trends: list[Trend]) -> int:
    """Commit one release as an ``omega worker`` would; returns the base version."""
    store = open_storage(server.db_url)
    try:
        base, _ = store.current_release()
        pattern = ConsolidatedPattern(
            id=f"external-{base + 1}",
            task="preference",
            cells=(3,),
            success_rate=0.9,
            support=30,
            viewers=5,
            weight=1.0,
            version=base + 1,
        )
        stamped = [
            Trend(cell=t.cell, region=t.region, score=t.score, version=base + 1) for t in trends
        ]
        version = store.commit_release(
            base_version=base, upserted=[pattern], removed=[], trends=stamped, now=time.time()
        )
    finally:
        store.close()
    assert version == base + 1
    return base


def test_sse_needs_a_viewer_token(client: httpx.Client) -> None:
    assert client.get("/api/omega/events").status_code == 401


def test_metrics_count_requests_syncs_and_rejections(
    server: ServerProcess, client: httpx.Client
) -> None:
    device = Device.register(client)
    device.sync()
    client.get(f"/api/omega/viewers/{device.viewer_id}")  # 401: a rejection
    text = client.get("/metrics").text
    assert "omega_syncs_total" in text
    assert 'omega_http_requests_total{method="POST",route="/api/omega/sync",status="200"}' in text
    assert 'route="/api/omega/viewers/{viewer_id}"' in text
    assert device.viewer_id not in text  # labels are route templates, never raw paths
    assert 'omega_rejections_total{reason="auth"}' in text
    assert "omega_http_request_duration_seconds_bucket" in text
    assert "omega_release_version" in text
    assert "omega_patterns_ingested_total" in text


def test_health_and_openapi(client: httpx.Client) -> None:
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "Omega constellation"
    for path in ("/api/omega/viewers", "/api/omega/token", "/api/omega/sync", "/api/omega/events"):
        assert path in spec["paths"]
    sync_body = spec["paths"]["/api/omega/sync"]["post"]["requestBody"]["content"]
    assert set(sync_body) == {"application/x-omega", "application/json"}
    assert "SyncRequest" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def _round_children() -> list[int]:
    """Processes running a scheduled round (``omega.constellation._round_child``), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"omega.constellation._round_child" in cmdline:
                found.append(int(entry.name))
    return found


def test_scheduled_rounds_release_from_a_child_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`omega serve`'s own schedule federates without an admin call; each round runs in
    a child process (the server's GIL stays free for syncs), the server's watcher picks
    its release up, and no child outlives the server."""
    scheduled = start_server(tmp_path_factory.mktemp("scheduled"), OMEGA_FEDERATION_INTERVAL="0.5")
    seen_child = False
    try:
        with httpx.Client(base_url=scheduled.base_url, timeout=30) as client:
            codebook_id = publish_codebook(scheduled)
            for _ in range(3):
                device = Device.register(client)
                device.sync(device.push([preference(7), preference(8)], codebook_id=codebook_id))
            deadline = time.monotonic() + 60
            while stats(scheduled)["version"] == 0 and time.monotonic() < deadline:
                seen_child = seen_child or bool(_round_children())
                time.sleep(0.05)
            assert stats(scheduled)["version"] > 0, scheduled.log_path.read_text()
            pulled = Device.register(client).sync()
            released = {c for p in pulled.pull.patterns for c in p.cells}
            assert released >= {7, 8} and all(p.viewers >= 3 for p in pulled.pull.patterns)

            def rounds_counted() -> bool:
                return any(
                    line.startswith("omega_federation_rounds_total")
                    and float(line.split()[-1]) >= 1
                    for line in client.get("/metrics").text.splitlines()
                )

            # The watcher may see the release a moment before the server counts the round.
            deadline = time.monotonic() + 10
            while not rounds_counted() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert rounds_counted()
    finally:
        scheduled.stop()
    assert seen_child, "no round ran in a child process"
    deadline = time.monotonic() + 10
    while _round_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _round_children() == [], "a round's child process outlived the server"
    assert "Traceback" not in scheduled.log_path.read_text()


_FREEZE_PROBE = """
import asyncio, gc, sys
from omega.constellation import Settings, create_app

async def main() -> None:
    settings = Settings(data_dir=sys.argv[1], federation_interval=0, gc_freeze=sys.argv[2] == "1")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        print(gc.get_freeze_count())

asyncio.run(main())
"""


@pytest.mark.parametrize("freeze", [True, False])
def test_a_started_server_freezes_what_it_loaded(tmp_path: Path, freeze: bool) -> None:
    """With gc_freeze (the default) the libraries' objects leave the collector's view once
    the app has started; embedded with it off, the process's collector is left alone."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _FREEZE_PROBE, str(tmp_path), "1" if freeze else "0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    frozen = int(out.strip().splitlines()[-1])
    assert frozen > 10_000 if freeze else frozen == 0
