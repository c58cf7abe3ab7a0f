"""The ``/mcp`` door in the constellation's lifespan: its session manager starts with the
app and stops with it, however the lifespan is driven."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from _mcp_world import ADMIN_TOKEN
from test_mcp_http import INITIALIZE, MCP_HEADERS

from omega.constellation import Settings, create_app


def test_the_door_opens_and_closes_from_different_tasks(tmp_path: Path) -> None:
    """The simulator and the tests enter an in-process app's lifespan in one task and
    leave it in another: the session manager's task group must not mind."""
    settings = Settings(
        data_dir=tmp_path, admin_token=ADMIN_TOKEN, federation_interval=0, gc_freeze=False
    )
    app = create_app(settings)

    async def main() -> None:
        lifespan = app.router.lifespan_context(app)
        await asyncio.create_task(lifespan.__aenter__())
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {ADMIN_TOKEN}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
            answer = await c.post("/mcp", json=INITIALIZE, headers=headers)
            assert answer.status_code == 200, answer.text
            assert "omega-core" in answer.text
        await asyncio.create_task(lifespan.__aexit__(None, None, None))
        assert app.state.mcp_handler is None

    asyncio.run(main())
