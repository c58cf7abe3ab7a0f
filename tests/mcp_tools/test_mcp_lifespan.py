"""The ``/mcp`` door in the constellation's lifespan: its session manager starts on the
first request, stops with the app however the lifespan is driven, and costs a server
nobody asks nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
from _mcp_world import ADMIN_TOKEN, child_env
from test_mcp_http import INITIALIZE, MCP_HEADERS

from omega.constellation import Settings, create_app


def _settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir, admin_token=ADMIN_TOKEN, federation_interval=0, gc_freeze=False
    )


def test_the_door_opens_and_closes_from_different_tasks(tmp_path: Path) -> None:
    """The tests enter an in-process app's lifespan in one task and leave it in another:
    the session manager's task group must not mind."""
    app = create_app(_settings(tmp_path))

    async def main() -> None:
        lifespan = app.router.lifespan_context(app)
        await asyncio.create_task(lifespan.__aenter__())
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {ADMIN_TOKEN}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
            for _ in range(2):  # the first request starts the manager, the next reuses it
                answer = await c.post("/mcp", json=INITIALIZE, headers=headers)
                assert answer.status_code == 200, answer.text
                assert "omega-core" in answer.text
        await asyncio.create_task(lifespan.__aexit__(None, None, None))
        assert app.state.mcp_door is None

    asyncio.run(main())


SERVE_WITHOUT_MCP_TRAFFIC = """
import asyncio, sys
from pathlib import Path
from omega.constellation import Settings, create_app

async def main():
    app = create_app(Settings(data_dir=Path(sys.argv[1]), admin_token="a" * 20,
                              federation_interval=0, gc_freeze=False))
    async with app.router.lifespan_context(app):
        pass

asyncio.run(main())
print(sorted(m for m in sys.modules if m == "mcp" or m.startswith(("mcp.", "omega.mcp"))))
"""


def test_a_server_nobody_asks_never_imports_the_sdk(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SERVE_WITHOUT_MCP_TRAFFIC, str(tmp_path)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "[]", done.stdout
