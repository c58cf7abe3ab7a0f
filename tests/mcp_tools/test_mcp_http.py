"""``/mcp`` on a live ``omega serve`` (uvicorn on loopback): the core tools over
streamable HTTP with the SDK's client, behind the admin token and the allowed hosts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from _mcp_world import ADMIN_TOKEN, error_text, http_client, start_constellation, structured

from omega.bench.serving import ServerProcess
from omega.mcp import CORE_TOOLS

#: A JSON-RPC initialize, as any MCP client opens a session.
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "curl", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def test_the_core_tools_over_streamable_http(constellation: ServerProcess) -> None:
    async def scenario() -> None:
        async with http_client(constellation.base_url + "/mcp") as client:
            tools = (await client.list_tools()).tools
            assert tuple(t.name for t in tools) == CORE_TOOLS
            stats = structured(await client.call_tool("omega_stats", {}))
            assert stats["viewers"] == 0
            text = error_text(await client.call_tool("omega_consensus", {"pattern_id": 7}))
            assert "pattern_id: Input should be a valid string" in text
            # The same session keeps serving after a refused call.
            assert structured(await client.call_tool("omega_stats", {}))["version"] == 0

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("headers", "status", "words"),
    [
        ({}, 401, "needs the admin token"),
        ({"Authorization": "Bearer " + "w" * 32}, 401, "wrong admin token"),
        ({"Authorization": "Basic abc"}, 401, "must be 'Bearer <token>'"),
        (
            {"Authorization": f"Bearer {ADMIN_TOKEN}", "Host": "evil.example:8000"},
            421,
            "Invalid Host header",
        ),
        (
            {"Authorization": f"Bearer {ADMIN_TOKEN}", "Origin": "http://evil.example"},
            403,
            "Invalid Origin header",
        ),
    ],
)
def test_mcp_refuses_requests_without_the_token_or_from_other_hosts(
    constellation: ServerProcess, headers: dict[str, str], status: int, words: str
) -> None:
    answer = httpx.post(
        constellation.base_url + "/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers}
    )
    assert answer.status_code == status, answer.text
    assert words in answer.text
    if status == 401:
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["www-authenticate"].startswith("Bearer")
    # Nothing was opened for the refused request; the endpoint still serves.
    good = httpx.post(
        constellation.base_url + "/mcp",
        json=INITIALIZE,
        headers={**MCP_HEADERS, "Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert good.status_code == 200, good.text


def test_mcp_answers_only_where_it_is_allowed_and_enabled(tmp_path: Path) -> None:
    hosts = '["omega.example.com:*"]'
    server = start_constellation(tmp_path / "public", OMEGA_MCP_ALLOWED_HOSTS=hosts)
    try:
        auth = {**MCP_HEADERS, "Authorization": f"Bearer {ADMIN_TOKEN}"}
        local = httpx.post(server.base_url + "/mcp", json=INITIALIZE, headers=auth)
        assert local.status_code == 421  # loopback is no longer among the allowed names
        named = {**auth, "Host": "omega.example.com:8443"}
        answer = httpx.post(server.base_url + "/mcp", json=INITIALIZE, headers=named)
        assert answer.status_code == 200, answer.text
    finally:
        server.stop()
    off = start_constellation(tmp_path / "off", OMEGA_MCP="false")
    try:
        answer = httpx.post(off.base_url + "/mcp", json=INITIALIZE, headers=auth)
        assert answer.status_code == 404
        assert httpx.get(off.base_url + "/healthz").status_code == 200
    finally:
        off.stop()
