"""An assistant's session, end to end, on a live ``omega serve``.

As the operator (core tools over streamable HTTP at ``/mcp``) it initialises the
deployment and provisions three households' TVs; as a viewer it initialises its TV
(``omega mcp viewer`` over stdio), tracks what the household watches, asks for
recommendations with reasons and syncs; two neighbours' TVs do the same (the viewer
tools in memory). Then, as the operator again, it aggregates and asks why the pattern
the three households share was released; and its TV pulls it back.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from _mcp_world import catalog, http_client, structured, viewer_command
from mcp import Client

from omega.bench.serving import ServerProcess
from omega.mcp import ViewerOptions, ViewerSession, viewer_server

HOUSEHOLDS = ("living-room", "kitchen", "bedroom")
#: What every household watches to the end: crime films.
WATCHED = ("cri0", "cri1", "cri2", "cri3")


async def household(client: Client, viewer_id: str, credentials: dict[str, Any]) -> dict[str, Any]:
    """One TV through its viewer tools: init, a few views, recommendations, a sync."""
    config = {"catalog": catalog(), "credentials": credentials}
    init = structured(
        await client.call_tool("viewer_init", {"viewer_id": viewer_id, "config": config})
    )
    assert init["registered_as"] == viewer_id and init["items"] == 24
    for item in WATCHED:
        meta = {"watch_fraction": 0.97, "completed": True}
        args = {"action": "view", "media_id": item, "metadata": meta}
        structured(await client.call_tool("viewer_track_behavior", args))
    ranked = structured(await client.call_tool("viewer_get_recommendations", {"k": 5}))
    assert all(item["reason"] and item["score"] > 0 for item in ranked["items"])
    assert not set(WATCHED) & {item["item_id"] for item in ranked["items"]}
    synced = structured(await client.call_tool("viewer_sync", {}))
    assert synced["synced"], synced["reason"]
    result = synced["result"]
    assert result["viewer_id"] == viewer_id
    assert result["accepted"] == result["pushed"] > 0 and result["rejected"] == 0
    return result


def test_an_assistant_drives_both_sides(
    tmp_path: Path, constellation: ServerProcess, codebook: dict[str, Any]
) -> None:
    url = constellation.base_url

    async def session() -> None:
        async with http_client(url + "/mcp") as operator:
            init = structured(
                await operator.call_tool("omega_init", {"config": {"codebook": codebook}})
            )
            assert init["codebook"]["status"] == "published"
            credentials = {}
            for viewer_id in HOUSEHOLDS:
                answer = await operator.call_tool("omega_register_viewer", {"viewer_id": viewer_id})
                credentials[viewer_id] = structured(answer)
                del credentials[viewer_id]["expires_in"]
            # The assistant's own TV: `omega mcp viewer` over stdio.
            tv = viewer_command(tmp_path / "living-room", "--server", url, "--every", "3600")
            async with Client(tv) as own:
                await household(own, "living-room", credentials["living-room"])
                # The neighbours' TVs: the same tools, in memory.
                for viewer_id in HOUSEHOLDS[1:]:
                    options = ViewerOptions(directory=tmp_path / viewer_id, server=url, every=3600)
                    neighbour = ViewerSession(options)
                    try:
                        async with Client(viewer_server(neighbour)) as client:
                            await household(client, viewer_id, credentials[viewer_id])
                    finally:
                        await asyncio.to_thread(neighbour.close)
                # The operator aggregates and asks why the shared pattern was released.
                round_ = structured(await operator.call_tool("omega_aggregate", {}))
                assert round_["ran"] and round_["status"] == "released" and round_["released"] >= 1
                stats = structured(await operator.call_tool("omega_stats", {}))
                shared = [p for p in stats["top_patterns"] if p["viewers"] == 3]
                assert shared, stats["top_patterns"]
                pattern_id = shared[0]["id"]
                why = structured(
                    await operator.call_tool("omega_consensus", {"pattern_id": pattern_id})
                )
                assert why["verdict"] == "released"
                assert why["released"]["id"] == pattern_id
                assert sorted(why["live"]["voter_ids"]) == sorted(HOUSEHOLDS)
                assert why["live"]["agreement"] == 1.0 and why["live"]["released_by_rules"]
                assert "3 distinct viewers back it" in why["reasons"][0]
                told = await operator.call_tool("omega_distribute", {"viewer_ids": ["kitchen"]})
                assert structured(told)["events"] == 1
                pruned = structured(await operator.call_tool("omega_prune", {"max_age": 3600}))
                assert pruned["older"] == 0 and pruned["live_patterns"] == stats["live_patterns"]
                # Not due yet (the server paced the TV); forced, it pulls the release.
                waiting = structured(await own.call_tool("viewer_sync", {}))
                assert not waiting["synced"] and "not due" in waiting["reason"]
                pulled = structured(await own.call_tool("viewer_sync", {"force": True}))
                assert pulled["result"]["pulled"] >= 1
                assert pulled["result"]["version"] == round_["version"]
                stats = structured(await own.call_tool("viewer_stats", {}))
                assert stats["collective_patterns"] >= 1 and stats["sync"]["syncs"] == 2

    asyncio.run(session())
