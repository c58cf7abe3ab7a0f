"""The viewer tools in memory, through the SDK's own client: schemas, what each tool does
to a real brain, and bad input answered with one sentence and nothing stored."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from _mcp_world import catalog, error_text, structured
from mcp import Client

from omega.brain import Brain
from omega.mcp import VIEWER_TOOLS, ViewerOptions, ViewerSession, viewer_server

Scenario = Callable[[Client, ViewerSession], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario, *, init: bool = True) -> None:
    """``scenario`` against a fresh TV's viewer tools (initialised with the catalog)."""
    session = ViewerSession(ViewerOptions(directory=tmp_path / "tv"))

    async def main() -> None:
        async with Client(viewer_server(session)) as client:
            if init:
                config = {"catalog": catalog(), "region": "eu"}
                structured(
                    await client.call_tool(
                        "viewer_init", {"viewer_id": "living-room", "config": config}
                    )
                )
            await scenario(client, session)

    try:
        asyncio.run(main())
    finally:
        session.close()


def test_every_tool_is_listed_with_input_and_output_schemas(tmp_path: Path) -> None:
    async def scenario(client: Client, _: ViewerSession) -> None:
        tools = (await client.list_tools()).tools
        assert tuple(t.name for t in tools) == VIEWER_TOOLS
        for tool in tools:
            assert tool.description and tool.output_schema, tool.name
            assert tool.output_schema["type"] == "object"
        track = next(t for t in tools if t.name == "viewer_track_behavior")
        action = track.input_schema["properties"]["action"]
        assert set(action["enum"]) == {"view", "skip", "rate", "search", "browse"}

    run(tmp_path, scenario, init=False)


def test_a_tool_before_viewer_init_says_what_to_do(tmp_path: Path) -> None:
    async def scenario(client: Client, _: ViewerSession) -> None:
        text = error_text(await client.call_tool("viewer_stats", {}))
        assert "call viewer_init first" in text and "Traceback" not in text

    run(tmp_path, scenario, init=False)


def test_tracking_then_recommendations_with_scores_and_reasons(tmp_path: Path) -> None:
    async def scenario(client: Client, _: ViewerSession) -> None:
        for n in range(4):  # a household that watches crime films to the end
            meta = {"watch_fraction": 0.95, "completed": True}
            args = {"action": "view", "media_id": f"cri{n}", "metadata": meta}
            done = structured(await client.call_tool("viewer_track_behavior", args))
            assert done["success"] and done["reward"] >= 0.7 and done["critique"]
        skipped = structured(
            await client.call_tool(
                "viewer_track_behavior",
                {"action": "skip", "media_id": "ani0", "metadata": {"at_seconds": 30}},
            )
        )
        assert not skipped["success"]
        rated = structured(
            await client.call_tool(
                "viewer_track_behavior",
                {"action": "rate", "media_id": "cri5", "metadata": {"stars": 5}},
            )
        )
        assert rated["success"]
        searched = {"query": "mafia", "results": ["cri6", "doc1"]}
        args = {"action": "search", "media_id": "cri6", "metadata": searched}
        structured(await client.call_tool("viewer_track_behavior", args))
        browse = {"action": "browse", "media_id": "doc2", "metadata": {"items": ["doc3"]}}
        structured(await client.call_tool("viewer_track_behavior", browse))
        ranked = structured(await client.call_tool("viewer_get_recommendations", {"k": 5}))
        items = ranked["items"]
        assert len(items) == 5 and ranked["brain_ms"] > 0
        assert all(i["reason"] and i["signals"] == {} for i in items)
        assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
        assert not {"cri0", "cri1", "cri2", "cri3", "ani0"} & {i["item_id"] for i in items}
        assert items[0]["item_id"].startswith("cri")  # more of what the household enjoys
        docs = await client.call_tool(
            "viewer_get_recommendations",
            {
                "k": 3,
                "filters": {"genres": ["Documentary"]},
                "context": {"time_bucket": "evening", "day_type": "weekend"},
                "explain": True,
            },
        )
        assert {i["item_id"][:3] for i in structured(docs)["items"]} == {"doc"}
        assert all("semantic" in i["signals"] for i in structured(docs)["items"])
        stats = structured(await client.call_tool("viewer_stats", {}))
        assert (stats["viewer_id"], stats["items"], stats["episodes"]) == ("living-room", 24, 8)
        assert stats["sync"] is None and "instant" in stats["tiers"]
        exported = structured(await client.call_tool("viewer_export_patterns", {}))
        assert exported["min_quality"] == 0.7
        assert all(p["success_rate"] >= 0.7 and p["support"] >= 3 for p in exported["patterns"])

    run(tmp_path, scenario)
    with Brain.open(tmp_path / "tv", create=False) as brain:  # all of it is in the brain
        assert brain.stats()["episodes"] == 8


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("viewer_do_everything", {}, "unknown tool 'viewer_do_everything'; this server has:"),
        ("viewer_get_recommendations", {"k": "ten"}, "k: Input should be a valid integer"),
        ("viewer_get_recommendations", {"k": 0}, "k: Input should be greater than or equal to 1"),
        ("viewer_track_behavior", {"action": "watch", "media_id": "cri0"}, "action: Input"),
        (
            "viewer_track_behavior",
            {"action": "rate", "media_id": "cri0", "metadata": {"stars": 9}},
            "metadata.stars: Input should be less than or equal to 5",
        ),
        ("viewer_track_behavior", {"action": "view", "media_id": "nope"}, "unknown item 'nope'"),
        ("viewer_track_behavior", {"action": "rate", "media_id": "cri0"}, "needs metadata.stars"),
        ("viewer_track_behavior", {"action": "view"}, "a view needs media_id"),
        ("viewer_track_behavior", {"action": "search"}, "a search needs metadata.query"),
        (
            "viewer_track_behavior",
            {"action": "browse", "metadata": {"items": ["cri0", "ghost"]}},
            "unknown item 'ghost'",
        ),
        ("viewer_init", {"viewer_id": "x", "config": {"catalogue": []}}, "config.catalogue"),
        ("viewer_sync", {}, "has no constellation"),
        ("viewer_export_patterns", {"min_quality": 2}, "min_quality: Input should be"),
    ],
)
def test_bad_input_is_one_sentence_and_stores_nothing(
    tmp_path: Path, tool: str, arguments: dict[str, object], expected: str
) -> None:
    async def scenario(client: Client, session: ViewerSession) -> None:
        before = session.brain().stats()["episodes"]
        text = error_text(await client.call_tool(tool, arguments))
        assert expected in text and "\n" not in text and "Traceback" not in text
        assert session.brain().stats()["episodes"] == before
        # The server keeps serving.
        structured(await client.call_tool("viewer_stats", {}))

    run(tmp_path, scenario)
