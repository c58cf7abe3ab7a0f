"""schemathesis against a live ``omega helper serve``: every operation of its OpenAPI
document, with the leader's token, answers without a 5xx and as documented (its
msgpack bodies generated from the same JSON Schemas)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from _api_fuzz import CONFIG, auth_for
from omega.helper.app import create_helper_app
from omega.helper.service import SECRET_FILE, HelperService, load_secret
from omega.protocol.aggregation import auth_token


def _document() -> dict[str, Any]:
    """The document the live helper serves (the test checks they are equal), built here
    so that pytest can make one test per operation when it collects this module."""
    with tempfile.TemporaryDirectory(prefix="omega-helper-doc-") as tmp:
        return create_helper_app(HelperService.open(Path(tmp))).openapi()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``omega helper serve`` on a free loopback port, once it answers /healthz."""
    port = _free_port()
    command = [sys.executable, "-m", "omega.cli", "helper", "serve", "--data-dir", str(data_dir)]
    command += ["--port", str(port), "--min-batch", "1", "--log-level", "warning"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=os.environ)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    process.wait(timeout=10)
    raise RuntimeError(f"omega helper serve did not start:\n{log.read_text()}")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    root = tmp_path_factory.mktemp("fuzzed-helper")
    process, url = _serve(root / "data", root / "helper.log")
    try:
        assert httpx.get(url + "/openapi.json").json() == DOCUMENT
        secret = load_secret(root / "data" / SECRET_FILE, create=False)
        yield url, {"leaderToken": auth_token(secret)}
    finally:
        process.terminate()
        process.wait(timeout=15)


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(
    case: schemathesis.Case, live: tuple[str, dict[str, str]]
) -> None:
    url, tokens = live
    case.call_and_validate(base_url=url, headers=auth_for(case, tokens), timeout=30)
