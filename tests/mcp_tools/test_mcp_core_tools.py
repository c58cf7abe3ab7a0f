"""The core tools in memory, through the SDK's own client, over a constellation in this
process (its real admin API through an ASGI transport): init, provisioning, stats, and
bad input answered with one sentence and nothing stored."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from _mcp_world import ADMIN_TOKEN, error_text, structured
from mcp import Client

from omega.constellation import Settings, create_app
from omega.mcp import CORE_TOOLS, Operator, core_server
from omega.mcp.core import _aggregate
from omega.mcp.core_models import AggregateResult
from omega.protocol.attestation import Manufacturer
from omega.sync import AsgiTransport

Scenario = Callable[[Client], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario, *, token: str = ADMIN_TOKEN) -> None:
    """``scenario`` against the core tools of a fresh in-process constellation."""
    settings = Settings(
        data_dir=tmp_path / "server",
        admin_token=ADMIN_TOKEN,
        federation_interval=0,
        gc_freeze=False,
        mcp=False,  # /mcp is tested live (test_mcp_http.py); here the tools are the point
    )

    async def main() -> None:
        async with (
            AsgiTransport(create_app(settings)) as transport,
            Client(core_server(Operator(transport, token))) as client,
        ):
            await scenario(client)

    asyncio.run(main())


def test_every_tool_is_listed_with_input_and_output_schemas(tmp_path: Path) -> None:
    async def scenario(client: Client) -> None:
        tools = (await client.list_tools()).tools
        assert tuple(t.name for t in tools) == CORE_TOOLS
        for tool in tools:
            assert tool.description and tool.output_schema, tool.name

    run(tmp_path, scenario)


def test_init_publishes_a_codebook_once_and_trusts_makers(
    tmp_path: Path, codebook: dict[str, Any]
) -> None:
    maker = Manufacturer.generate("acme-tv", "k1")
    key = {"manufacturer_id": "acme-tv", "key_id": "k1", "public_key": maker.public_key.hex()}

    async def scenario(client: Client) -> None:
        empty = structured(await client.call_tool("omega_init", {}))
        assert empty["codebook"]["status"] == "missing"
        assert any("no codebook yet" in note for note in empty["notes"])
        config = {"codebook": codebook, "manufacturers": [key]}
        first = structured(await client.call_tool("omega_init", {"config": config}))
        assert first["codebook"] == {
            "status": "published",
            "codebook_id": codebook["codebook_id"],
            "k": codebook["k"],
            "dim": 384,
            "sequence": first["codebook"]["sequence"],
        }
        assert first["manufacturers"] == [
            {"manufacturer_id": "acme-tv", "key_id": "k1", "status": "trusted"}
        ]
        again = structured(await client.call_tool("omega_init", {"config": config}))
        assert again["codebook"]["status"] == "kept"
        assert again["codebook"]["sequence"] == first["codebook"]["sequence"]
        assert again["manufacturers"][0]["status"] == "already trusted"
        other = {**codebook, "codebook_id": "cb-other"}
        kept = structured(await client.call_tool("omega_init", {"config": {"codebook": other}}))
        assert kept["codebook"]["codebook_id"] == codebook["codebook_id"]
        assert any("replace_codebook=true" in note for note in kept["notes"])
        config = {"codebook": other, "replace_codebook": True}
        replaced = structured(await client.call_tool("omega_init", {"config": config}))
        assert replaced["codebook"]["codebook_id"] == "cb-other"
        assert replaced["codebook"]["sequence"] > first["codebook"]["sequence"]

    run(tmp_path, scenario)


def test_a_provisioned_viewer_gets_credentials_once(tmp_path: Path) -> None:
    async def scenario(client: Client) -> None:
        args = {"viewer_id": "tv-den", "metadata": {"region": "eu", "device_model": "set-top"}}
        viewer = structured(await client.call_tool("omega_register_viewer", args))
        assert viewer["viewer_id"] == "tv-den" and viewer["access_token"]
        assert viewer["release_keys"] and viewer["expires_in"] > 0
        again = error_text(await client.call_tool("omega_register_viewer", args))
        assert "viewer 'tv-den' is already registered" in again
        stats = structured(await client.call_tool("omega_stats", {}))
        assert stats["viewers"] == 1 and stats["top_patterns"] == []
        # central DP on co-watch counts is off by default (and this server has no
        # helper, so no co-watch rounds): no DP is shown
        assert stats["cowatch_dp"] is None

    run(tmp_path, scenario)


def test_aggregate_runs_a_round_now_or_only_when_contributions_wait(tmp_path: Path) -> None:
    async def scenario(client: Client) -> None:
        idle = structured(await client.call_tool("omega_aggregate", {"immediate": False}))
        assert not idle["ran"] and "no contributions are pending" in idle["reason"]
        ran = structured(await client.call_tool("omega_aggregate", {}))
        assert ran["ran"] and ran["status"] == "no_codebook" and ran["version"] == 0
        assert (ran["cowatch_rows"], ran["cowatch_error"]) == (0, None)

    run(tmp_path, scenario)


def test_aggregate_says_why_a_rounds_cowatch_step_stopped() -> None:
    """A round whose co-watch step hit a storage error still released its patterns:
    the operator's tool says so instead of reporting a clean round."""
    error = "a co-watch batch was not folded: database is locked"
    result = {"status": "released", "released": 3, "cowatch_rows": 0, "cowatch_error": error}
    told = _aggregate(ran=True, reason="ran", version=7, result=result)
    assert (told.status, told.released, told.cowatch_error) == ("released", 3, error)
    assert AggregateResult.model_json_schema()["properties"]["cowatch_error"]


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("omega_reboot", {}, "unknown tool 'omega_reboot'"),
        ("omega_register_viewer", {"viewer_id": "has space"}, "viewer_id: String should match"),
        ("omega_register_viewer", {"viewer_id": "v", "metadata": {"region": ""}}, "region"),
        ("omega_aggregate", {"immediate": "sometimes"}, "immediate: Input should be a valid"),
        ("omega_distribute", {"priority": "urgent"}, "priority: Input should be"),
        ("omega_distribute", {}, "nothing has been released yet"),
        ("omega_distribute", {"viewer_ids": ["ghost"]}, "no such viewer(s): ghost"),
        ("omega_consensus", {"pattern_id": "p-unknown"}, "no codebook has been published yet"),
        ("omega_prune", {}, "give min_quality, max_age_s or both"),
        ("omega_prune", {"min_quality": 1.5}, "min_quality: Input should be less than"),
        ("omega_init", {"config": {"codebook": {"codebook_id": "x"}}}, "config.codebook.dim"),
        (
            "omega_init",
            {
                "config": {
                    "codebook": {"codebook_id": "x", "dim": 2, "k": 2, "centroids_f16": "AA=="}
                }
            },
            "centroids_f16 holds 1 bytes; k*dim*2 = 8",
        ),
    ],
)
def test_bad_input_is_one_sentence_and_stores_nothing(
    tmp_path: Path, tool: str, arguments: dict[str, object], expected: str
) -> None:
    async def scenario(client: Client) -> None:
        before = structured(await client.call_tool("omega_stats", {}))
        text = error_text(await client.call_tool(tool, arguments))
        assert expected in text and "\n" not in text and "Traceback" not in text
        after = structured(await client.call_tool("omega_stats", {}))  # still serving
        assert after == before
        init = structured(await client.call_tool("omega_init", {}))
        assert init["codebook"]["status"] == "missing"

    run(tmp_path, scenario)


def test_a_wrong_admin_token_is_refused_in_one_sentence(tmp_path: Path) -> None:
    async def scenario(client: Client) -> None:
        text = error_text(await client.call_tool("omega_stats", {}))
        assert "the constellation refused the admin token: wrong admin token" in text

    run(tmp_path, scenario, token="not-the-token-" + "q" * 10)
