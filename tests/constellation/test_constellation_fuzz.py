"""schemathesis against a live ``omega serve``: every operation of its OpenAPI document,
with a viewer's and the admin's tokens, answers without a 5xx and as documented."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from _constellation_harness import ADMIN_TOKEN, Device, ServerProcess, start_server
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from _api_fuzz import CONFIG, auth_for
from omega.constellation.app import create_app
from omega.constellation.settings import Settings

# The document the live server serves (the test checks they are equal), built here so
# that pytest can make one test per operation when it collects this module.
DOCUMENT = create_app(Settings(data_dir=Path("unused"))).openapi()
# Left out: GET /api/omega/events is an open stream that says nothing before the next
# release; its 401 and its events are tested in test_constellation_ops.py.
Live = tuple[ServerProcess, str, dict[str, str]]  # the server, the viewer, the tokens
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG).exclude(path="/api/omega/events")


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Live]:
    server = start_server(
        tmp_path_factory.mktemp("fuzzed"),
        # Enough for the whole run: the fuzzer should reach the handlers, not the 429.
        OMEGA_RATE_LIMIT="1000000",
    )
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            assert client.get("/openapi.json").json() == DOCUMENT
            device = Device.register(client)
        tokens = {"viewerToken": device.access_token, "adminToken": ADMIN_TOKEN}
        yield server, device.viewer_id, tokens
    finally:
        server.stop()


def _as_own(case: schemathesis.Case, viewer_id: str) -> None:
    """A schema-valid case speaks for the test's viewer, so that it reaches the handler
    behind the 403 of another viewer's id (negative cases are sent as generated)."""
    if case.meta is None or case.meta.generation.mode is not GenerationMode.POSITIVE:
        return
    if "viewer_id" in (case.path_parameters or {}):
        case.path_parameters["viewer_id"] = viewer_id
    if isinstance(case.body, dict):
        for part in (case.body, case.body.get("pull"), case.body.get("push")):
            if isinstance(part, dict) and "viewer_id" in part:
                part["viewer_id"] = viewer_id


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: schemathesis.Case, live: Live) -> None:
    server, viewer_id, tokens = live
    _as_own(case, viewer_id)
    case.call_and_validate(base_url=server.base_url, headers=auth_for(case, tokens), timeout=30)


def test_the_checks_fail_a_server_error_even_a_documented_one() -> None:
    """The fuzzing above can fail on a 5xx: a route documented to answer 503, answering
    it to a schema-valid request, fails the built-in ``not_a_server_error`` check."""
    app = FastAPI()

    @app.get("/busy", responses={503: {"description": "storage away"}})
    def busy() -> JSONResponse:
        return JSONResponse({"detail": "storage away"}, status_code=503)

    operation = schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)["/busy"]["GET"]
    with pytest.raises(BaseExceptionGroup) as failed:
        operation.Case().call_and_validate()
    assert any("Server error" in str(e) for e in failed.value.exceptions)
