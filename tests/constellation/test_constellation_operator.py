"""The operator's routes of a real server (``routes/operator.py``, ``routes/consensus.py``):
codebook summary, provisioned viewers, announcements, consensus and pruning."""

from __future__ import annotations

import json
from collections.abc import Iterator

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

from omega.federation import pattern_id


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own: these tests start from no codebook and count its patterns."""
    process = start_server(tmp_path_factory.mktemp("operator"))
    yield process
    process.stop()


@pytest.fixture
def admin(fresh: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fresh.base_url, headers=fresh.admin(), timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def world(fresh: ServerProcess) -> tuple[str, str]:
    """A codebook, three devices preferring cell 7 and one cell 9, a round: the codebook
    id and the released pattern's id."""
    codebook_id = publish_codebook(fresh, k=32)
    with httpx.Client(base_url=fresh.base_url, timeout=30) as client:
        for cell in (7, 7, 7, 9):
            device = Device.register(client)
            device.sync(device.push([preference(cell)], codebook_id=codebook_id))
        run_round(fresh)
        (released,) = Device.register(client).sync().pull.patterns
    assert released.cells == (7,)
    return codebook_id, released.id


def test_codebook_summary_is_404_before_a_codebook_then_names_it(
    fresh: ServerProcess, admin: httpx.Client, request: pytest.FixtureRequest
) -> None:
    missing = admin.get("/api/omega/admin/codebook")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    codebook_id, _ = request.getfixturevalue("world")
    summary = admin.get("/api/omega/admin/codebook").json()
    assert summary["codebook_id"] == codebook_id
    assert (summary["k"], summary["dim"], summary["items"]) == (32, 16, 0)
    unauthenticated = httpx.get(fresh.base_url + "/api/omega/admin/codebook")
    assert unauthenticated.status_code == 401


def test_a_provisioned_viewer_gets_working_tokens_once(
    fresh: ServerProcess, admin: httpx.Client
) -> None:
    created = admin.post("/api/omega/admin/viewers", json={"viewer_id": "tv-kitchen"})
    assert created.status_code == 201, created.text
    answer = created.json()
    assert answer["viewer_id"] == "tv-kitchen" and answer["release_keys"]
    auth = {"Authorization": f"Bearer {answer['access_token']}"}
    entry = httpx.get(fresh.base_url + "/api/omega/viewers/tv-kitchen", headers=auth)
    assert entry.status_code == 200 and entry.json()["region"] == "global"
    again = admin.post("/api/omega/admin/viewers", json={"viewer_id": "tv-kitchen"})
    assert again.status_code == 409 and "already registered" in again.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"viewer_id": "no spaces"}, 422),
        ({"viewer_id": "ok", "region": ""}, 422),
        ({"viewer_id": 5}, 400),
        ({}, 400),
    ],
)
def test_a_bad_provision_is_refused_and_stores_nothing(
    fresh: ServerProcess, admin: httpx.Client, body: dict[str, object], status: int
) -> None:
    before = stats(fresh)["viewers"]
    answer = admin.post("/api/omega/admin/viewers", json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["detail"]
    assert stats(fresh)["viewers"] == before


def test_consensus_explains_a_released_and_a_withheld_pattern(
    admin: httpx.Client, world: tuple[str, str]
) -> None:
    codebook_id, released_id = world
    listed = admin.get("/api/omega/admin/release", params={"limit": 5}).json()
    assert (listed["total"], [p["id"] for p in listed["patterns"]]) == (1, [released_id])
    assert admin.get("/api/omega/admin/release", params={"limit": 0}).status_code == 400
    document = admin.get(f"/api/omega/admin/consensus/{released_id}").json()
    assert document["verdict"] == "released"
    assert document["released"]["id"] == released_id
    assert document["live"]["voters"] == 3 and len(document["live"]["voter_ids"]) == 3
    assert document["live"]["agreement"] == 1.0 and document["live"]["released_by_rules"]
    assert "3 distinct viewers back it" in document["reasons"][0]
    # The lone device's cluster: the same task and context (any/any), cell 9.
    withheld = admin.get(
        f"/api/omega/admin/consensus/{pattern_id(codebook_id, 'preference', 14, (9,))}"
    )
    document = withheld.json()
    assert document["verdict"] == "withheld" and document["released"] is None
    assert document["reasons"][0].startswith("only 1 distinct viewer(s) back it, 3 are needed")
    unknown = admin.get("/api/omega/admin/consensus/no-such-id")
    assert unknown.status_code == 404 and "no-such-id" in unknown.json()["detail"]


def test_announce_reaches_listeners_on_the_event_stream(
    fresh: ServerProcess, admin: httpx.Client, world: tuple[str, str]
) -> None:
    version = stats(fresh)["version"]
    assert version > 0
    with httpx.Client(base_url=fresh.base_url, timeout=httpx.Timeout(10.0, read=20.0)) as client:
        listener = Device.register(client)
        with client.stream("GET", "/api/omega/events", headers=listener.auth) as sse:
            body = {"viewer_ids": [listener.viewer_id], "priority": "high"}
            answer = admin.post("/api/omega/admin/announce", json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"version": version, "events": 1, "listeners": 1}
            event = next(e for e in _events(sse) if e.get("event") == "release")
    data = json.loads(event["data"])["data"]
    assert data == {"announced": listener.viewer_id, "priority": "high"}
    missing = admin.post("/api/omega/admin/announce", json={"viewer_ids": ["ghost"]})
    assert missing.status_code == 404 and "ghost" in missing.json()["detail"]


def test_prune_forgets_weak_patterns_and_the_next_round_withdraws_them(
    fresh: ServerProcess, admin: httpx.Client, world: tuple[str, str]
) -> None:
    before = stats(fresh)
    assert before["live_patterns"] == 4
    empty = admin.post("/api/omega/admin/prune", json={})
    assert empty.status_code == 422
    assert admin.post("/api/omega/admin/prune", json={"min_quality": 2}).status_code == 422
    # Every pattern pushed here succeeds at 0.9: a floor of 0.95 drops them all.
    pruned = admin.post("/api/omega/admin/prune", json={"min_quality": 0.95, "max_age_s": 1e6})
    assert pruned.status_code == 200, pruned.text
    assert pruned.json() == {"older": 0, "weaker": before["live_patterns"], "live_patterns": 0}
    result = run_round(fresh)
    assert result["result"]["removed"] >= 1
    assert stats(fresh)["released_patterns"] == 0


def _events(response: httpx.Response) -> Iterator[dict[str, str]]:
    record: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in record:
                yield record
            record = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            record[name] = value.removeprefix(" ")
