"""The tools over stdio: real ``omega mcp viewer`` and ``omega mcp core`` subprocesses
launched by the SDK's client, as an assistant launches them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from _mcp_world import (
    ADMIN_TOKEN,
    catalog,
    child_env,
    error_text,
    structured,
    viewer_command,
)
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from omega.bench.serving import ServerProcess
from omega.brain import Brain
from omega.mcp import CORE_TOOLS, VIEWER_TOOLS


def test_the_viewer_tools_over_stdio_keep_serving_through_bad_calls(tmp_path: Path) -> None:
    brain = tmp_path / "tv"

    async def scenario() -> None:
        async with Client(viewer_command(brain)) as client:
            tools = (await client.list_tools()).tools
            assert tuple(t.name for t in tools) == VIEWER_TOOLS
            config = {"catalog": catalog()}
            init = await client.call_tool("viewer_init", {"viewer_id": "den", "config": config})
            assert structured(init)["items"] == 24
            for item in ("doc0", "doc1", "doc2"):
                args = {"action": "view", "media_id": item, "metadata": {"watch_fraction": 1.0}}
                structured(await client.call_tool("viewer_track_behavior", args))
            bad = [
                ("viewer_teleport", {}, "unknown tool 'viewer_teleport'"),
                ("viewer_get_recommendations", {"k": [10]}, "k: Input should be a valid integer"),
                ("viewer_track_behavior", {"action": "view", "media_id": "x"}, "unknown item 'x'"),
            ]
            for tool, arguments, expected in bad:
                assert expected in error_text(await client.call_tool(tool, arguments))
            ranked = structured(await client.call_tool("viewer_get_recommendations", {"k": 3}))
            assert ranked["items"][0]["item_id"].startswith("doc")
            assert all(item["reason"] for item in ranked["items"])
            assert structured(await client.call_tool("viewer_stats", {}))["episodes"] == 3

    asyncio.run(scenario())
    # The server process flushed the brain as it stopped: three episodes, nothing else.
    with Brain.open(brain, create=False) as reopened:
        assert reopened.stats()["episodes"] == 3
    assert (brain / "viewer.json").read_text().startswith('{"viewer_id": "den"')


def test_the_core_tools_over_stdio_with_the_token_from_a_file(
    tmp_path: Path, constellation: ServerProcess
) -> None:
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")

    def command(token: Path) -> StdioServerParameters:
        return StdioServerParameters(
            command=sys.executable,
            args=[
                *("-m", "omega.cli", "mcp", "core"),
                *("--server", constellation.base_url, "--admin-token-file", str(token)),
            ],
            env=child_env(),
        )

    async def scenario() -> None:
        async with Client(command(token_file)) as client:
            assert tuple(t.name for t in (await client.list_tools()).tools) == CORE_TOOLS
            stats = structured(await client.call_tool("omega_stats", {}))
            assert stats["version"] == 0
        wrong = tmp_path / "wrong-token"
        wrong.write_text("x" * 32)
        async with Client(command(wrong)) as client:
            text = error_text(await client.call_tool("omega_stats", {}))
            assert "refused the admin token: wrong admin token" in text

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("args", "expected", "code"),
    [
        (["core", "--server", "http://127.0.0.1:9"], "need the admin token", 2),
        (["viewer", "--brain", "tv", "--every", "0"], "--every must be a positive", 3),
        (["viewer", "--brain", "tv", "--certificate", "c"], "go together", 2),
    ],
)
def test_omega_mcp_refuses_bad_options_in_one_sentence(
    tmp_path: Path, args: list[str], expected: str, code: int
) -> None:
    env = {k: v for k, v in child_env().items() if k != "OMEGA_ADMIN_TOKEN"}
    done = subprocess.run(
        [sys.executable, "-m", "omega.cli", "mcp", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == code, done.stderr
    assert expected in " ".join(done.stderr.split()), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "tv").exists()  # refused before anything was made
