"""Rate limits and size limits on a real server: every refusal is a problem, never a crash."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import numpy as np
import pytest
import zstandard
from _constellation_harness import BINARY, Device, ServerProcess, preference, start_server
from fastapi import Request
from starlette.responses import Response

from omega.constellation.guards import Viewer, ViewerRoute
from omega.protocol import codec
from omega.protocol.messages import PullRequest, Registration, SyncRequest

_GIB = 1 << 30
_ZSTD_FLAG = 0x01


def _assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, object] = response.json()
    assert problem["status"] == status
    assert problem["detail"]
    assert "Traceback" not in response.text
    return problem


def test_the_61st_request_in_a_minute_is_429_and_other_viewers_are_unaffected(
    client: httpx.Client,
) -> None:
    alice, bob = Device.register(client), Device.register(client)
    url = f"/api/omega/viewers/{alice.viewer_id}"
    statuses = [client.get(url, headers=alice.auth).status_code for _ in range(60)]
    assert statuses == [200] * 60

    refused = client.get(url, headers=alice.auth)
    problem = _assert_problem(refused, 429)
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert "retry" in str(problem["detail"])
    # The sync endpoint shares the budget.
    assert alice.sync_raw().status_code == 429

    assert client.get(f"/api/omega/viewers/{bob.viewer_id}", headers=bob.auth).status_code == 200
    assert bob.sync_raw().status_code == 200


def test_a_body_over_the_limit_is_413_by_content_length(client: httpx.Client) -> None:
    device = Device.register(client)
    response = device.post_frame("/api/omega/sync", os.urandom(300 * 1024))
    _assert_problem(response, 413)


def test_a_streamed_body_over_the_limit_is_413(client: httpx.Client) -> None:
    device = Device.register(client)

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield bytes(16 * 1024)

    response = client.post(
        "/api/omega/sync", content=chunks(), headers={"Content-Type": BINARY, **device.auth}
    )
    assert "content-length" not in response.request.headers
    _assert_problem(response, 413)


def _zstd_bomb(*, declared: bool) -> bytes:
    """A real zstd frame of 1 GiB of zeros, about 32 KB on the wire."""
    compressor = zstandard.ZstdCompressor(level=1, write_content_size=declared)
    stream = compressor.compressobj(size=_GIB if declared else -1)
    zeros = bytes(8 << 20)
    parts = [stream.compress(zeros) for _ in range(_GIB // len(zeros))]
    parts.append(stream.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {"declared": _zstd_bomb(declared=True), "undeclared": _zstd_bomb(declared=False)}


@pytest.mark.parametrize("kind", ["declared", "undeclared"])
def test_a_zstd_bomb_is_413_in_bounded_memory(
    server: ServerProcess, client: httpx.Client, bombs: dict[str, bytes], kind: str
) -> None:
    bomb = bombs[kind]
    assert len(bomb) < 64 * 1024
    if kind == "declared":
        assert zstandard.frame_content_size(bomb) == _GIB
    else:
        assert zstandard.frame_content_size(bomb) in (-1, zstandard.CONTENTSIZE_UNKNOWN)
    device = Device.register(client)
    frame = codec.frame(bomb, flags=_ZSTD_FLAG)
    peak_before = server.peak_rss_bytes()
    for _ in range(3):
        problem = _assert_problem(device.post_frame("/api/omega/sync", frame), 413)
        assert "limit" in str(problem["detail"])
    assert server.peak_rss_bytes() - peak_before < 64 << 20


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (BINARY, b""),
        (BINARY, b"\x01"),
        (BINARY, os.urandom(512)),
        (BINARY, codec.frame(b"\xc1\xc1\xc1")),
        (BINARY, bytes((99, 0)) + b"\x80"),
        (BINARY, codec.frame(b"not zstd at all", flags=_ZSTD_FLAG)),
        ("application/json", b"{not json"),
        ("application/json", b'{"msg": "sync"}'),
        ("application/json", b'{"msg": "sync", "pull": {"viewer_id": "x", "max_bytes": 5.5}}'),
    ],
    ids=[
        "empty",
        "truncated-header",
        "random",
        "bad-msgpack",
        "unknown-version",
        "bad-zstd",
        "bad-json",
        "missing-field",
        "fractional-integer",
    ],
)
def test_garbage_bodies_are_400_problems(
    client: httpx.Client, content_type: str, body: bytes
) -> None:
    device = Device.register(client)
    response = client.post(
        "/api/omega/sync", content=body, headers={"Content-Type": content_type, **device.auth}
    )
    _assert_problem(response, 400)


def test_a_well_formed_message_that_breaks_a_rule_is_a_422_problem(client: httpx.Client) -> None:
    device = Device.register(client)
    body = b'{"msg": "sync", "pull": {"viewer_id": "x", "max_bytes": -5}}'
    headers = {"Content-Type": "application/json", **device.auth}
    problem = _assert_problem(client.post("/api/omega/sync", content=body, headers=headers), 422)
    assert str(problem["type"]).endswith("/invalid-message") and "max_bytes" in str(
        problem["detail"]
    )


def test_a_whole_number_written_as_a_float_is_an_integer_in_json(client: httpx.Client) -> None:
    # JSON Schema (so the OpenAPI document) counts 5120.0 as an integer; so does the server.
    device = Device.register(client)
    body = b'{"msg": "sync", "pull": {"viewer_id": "%s", "max_bytes": 5120.0}}' % (
        device.viewer_id.encode()
    )
    headers = {"Content-Type": "application/json", **device.auth}
    assert client.post("/api/omega/sync", content=body, headers=headers).status_code == 200


def test_a_message_of_the_wrong_type_is_400(client: httpx.Client) -> None:
    device = Device.register(client)
    response = device.post_frame("/api/omega/sync", codec.encode(Registration()))
    _assert_problem(response, 400)


def test_an_unsupported_media_type_is_415(client: httpx.Client) -> None:
    device = Device.register(client)
    body = codec.encode(SyncRequest(pull=PullRequest(viewer_id=device.viewer_id)))
    for content_type in ("text/plain", "application/octet-stream"):
        response = client.post(
            "/api/omega/sync", content=body, headers={"Content-Type": content_type, **device.auth}
        )
        _assert_problem(response, 415)


def test_too_many_patterns_in_one_batch_is_413(client: httpx.Client) -> None:
    device = Device.register(client)  # the session server allows 100 per batch
    push = device.push([preference(i, pid=f"p{i}") for i in range(101)], codebook_id="cb")
    problem = _assert_problem(device.sync_raw(push), 413)
    assert "100" in str(problem["detail"])


def test_unknown_routes_and_methods_are_problems(client: httpx.Client) -> None:
    _assert_problem(client.get("/api/omega/nothing-here"), 404)
    _assert_problem(client.get("/api/omega/sync"), 405)
    _assert_problem(client.get("/api/omega/patterns", params={"since": "x"}), 401)


def test_a_405_allows_every_method_of_the_path(client: httpx.Client) -> None:
    # GET and POST /codebook are two routes; the 405 names both (RFC 9110 Allow).
    refused = client.put("/api/omega/codebook")
    _assert_problem(refused, 405)
    assert refused.headers["allow"] == "GET, POST"


def test_an_unknown_query_parameter_is_a_400_problem(client: httpx.Client) -> None:
    device = Device.register(client)
    response = client.get("/api/omega/patterns", params={"sinse": "5"}, headers=device.auth)
    problem = _assert_problem(response, 400)
    assert "sinse" in str(problem["detail"]) and "since" in str(problem["detail"])


@pytest.mark.parametrize("path", ["/api/omega/sync", "/api/omega/patterns"])
def test_the_viewer_writes_refuse_a_query_parameter_and_a_missing_token(
    client: httpx.Client, path: str
) -> None:
    # These two run their guards directly (ViewerRoute), not through FastAPI's dependencies.
    device = Device.register(client)
    body = codec.encode(SyncRequest(pull=PullRequest(viewer_id=device.viewer_id)))
    headers = {**device.auth, "Content-Type": BINARY}
    problem = _assert_problem(
        client.post(path, params={"since": "1"}, content=body, headers=headers), 400
    )
    assert "since" in str(problem["detail"]) and "takes none" in str(problem["detail"])
    anonymous = {"Content-Type": BINARY}
    _assert_problem(client.post(path, content=body, headers=anonymous), 401)


def test_a_viewer_route_refuses_an_endpoint_whose_dependencies_it_would_not_run() -> None:
    async def extra(request: Request, verified: Viewer, since: int = 0) -> Response:
        raise AssertionError("never called")

    with pytest.raises(TypeError, match="ViewerRoute"):
        ViewerRoute("/x", extra, methods=["POST"])


def test_retry_after_is_honest_for_a_configured_limit(tmp_path: Path) -> None:
    server = start_server(
        tmp_path / "small-limit",
        OMEGA_RATE_LIMIT="3",
        OMEGA_RATE_WINDOW="2",
        OMEGA_REGISTRATION_RATE_LIMIT="2",
        OMEGA_ALLOW_UNATTESTED="true",  # the empty registrations below
    )
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            device = Device.register(client)
            url = f"/api/omega/viewers/{device.viewer_id}"
            assert [client.get(url, headers=device.auth).status_code for _ in range(3)] == [200] * 3
            refused = client.get(url, headers=device.auth)
            _assert_problem(refused, 429)
            retry_after = int(refused.headers["retry-after"])
            assert 1 <= retry_after <= 2
            time.sleep(retry_after + 0.1)  # a device that waits as told is served again
            assert client.get(url, headers=device.auth).status_code == 200

            # Registrations per address are limited too when configured.
            statuses = [client.post("/api/omega/viewers").status_code for _ in range(3)]
            assert statuses[-1] == 429
            assert 201 in statuses
    finally:
        server.stop()


@pytest.mark.parametrize(
    "params",
    [{"since": str(2**80)}, {"since": "-1"}, {"max_bytes": str(2**40)}, {"max_bytes": "0"}],
)
def test_numbers_past_their_bounds_are_400_problems(
    client: httpx.Client, params: dict[str, str]
) -> None:
    device = Device.register(client)
    problem = _assert_problem(
        client.get("/api/omega/patterns", params=params, headers=device.auth), 400
    )
    assert next(iter(params)) in str(problem["detail"])
    assert client.get("/api/omega/patterns", headers=device.auth).status_code == 200  # still up


def test_a_codebook_with_non_finite_centroids_is_refused(
    client: httpx.Client, server: ServerProcess
) -> None:
    centroids = np.ones((4, 8), dtype="<f2")
    centroids[2, 3] = np.nan
    doc = {"codebook_id": "cb-nan", "dim": 8, "k": 4, "centroids_f16": centroids.tobytes()}
    response = client.post(
        "/api/omega/codebook",
        content=msgspec.json.encode(doc),
        headers={"Content-Type": "application/json", **server.admin()},
    )
    problem = _assert_problem(response, 422)
    assert "finite" in str(problem["detail"])
    current = client.get("/api/omega/codebook", headers=Device.register(client).auth)
    assert current.status_code == 404 or current.json()["codebook_id"] != "cb-nan"
