"""``/mcp`` on ``omega serve``: the operator's MCP tools over streamable HTTP.

- **Behind the admin token**: every request must carry ``Authorization: Bearer <admin
  token>``, checked before the MCP session manager sees it (401 problem otherwise).
- **In the app's lifespan**: the SDK's session manager runs a task group for its
  sessions, which must be running before the first request; a mounted sub-app's own
  lifespan never runs under FastAPI, so :func:`mcp_door` enters it in the
  constellation's lifespan (``create_app``) and leaves it at shutdown.
- **Allowed hosts**: the transport refuses Host headers outside
  ``Settings.mcp_allowed_hosts`` (loopback by default), and Origins outside the same
  names, against DNS rebinding.
- **One implementation of each tool**: the tools call the admin API through an
  in-process ASGI transport onto this very app (``omega.mcp.Operator``), exactly as
  ``omega mcp core --server URL`` does over the network.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from omega.constellation._runtime import Runtime, load_admin_token
from omega.constellation.guards import bearer_token
from omega.constellation.problems import problem_response
from omega.errors import AuthError

__all__ = ["MCP_PATH", "McpEndpoint", "mcp_door"]

MCP_PATH = "/mcp"


class McpEndpoint:
    """The ASGI endpoint at ``/mcp``: checks the admin token, then hands the request to
    the MCP session manager the lifespan started."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        handler = getattr(request.app.state, "mcp_handler", None)
        runtime = getattr(request.app.state, "runtime", None)
        if handler is None or not isinstance(runtime, Runtime):
            answer = problem_response(503, "the MCP endpoint is not running", slug="unavailable")
            await answer(scope, receive, send)
            return
        try:
            runtime.admin.check(bearer_token(request))
        except AuthError as exc:
            await problem_response(401, str(exc), slug="unauthorized")(scope, receive, send)
            return
        await handler(scope, receive, send)


@contextlib.asynccontextmanager
async def mcp_door(app: FastAPI, runtime: Runtime) -> AsyncIterator[None]:
    """Run the core tools' streamable-HTTP session manager while the app serves.

    The manager's task group lives in a task of its own, entered and left there: the
    app's lifespan may be driven from one task and closed from another (an in-process
    transport in tests and the simulator), which a task group must not see."""
    # Imported here: the MCP SDK costs ~0.5 s to import, which a server with mcp off
    # (and every process that only builds the app's routes) does not pay.
    from mcp.server.transport_security import TransportSecuritySettings

    from omega.mcp import Operator, core_server
    from omega.sync import AsgiTransport

    hosts = list(runtime.settings.mcp_allowed_hosts)
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")],
    )
    # The lifespan is already running: the transport only calls the app's routes.
    operator = Operator(AsgiTransport(app), load_admin_token(runtime.settings))
    server = core_server(operator)
    server.streamable_http_app(streamable_http_path=MCP_PATH, transport_security=security)
    manager = server.session_manager
    ready, stop = asyncio.Event(), asyncio.Event()

    async def serve() -> None:
        async with manager.run():
            ready.set()
            await stop.wait()

    task = asyncio.create_task(serve(), name="omega-mcp-sessions")
    try:
        await _started(task, ready)
        app.state.mcp_handler = manager.handle_request
        yield
    finally:
        app.state.mcp_handler = None
        stop.set()
        await task
        await operator.aclose()


async def _started(task: asyncio.Task[None], ready: asyncio.Event) -> None:
    """Wait until the session manager runs (or re-raise why it could not start)."""
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()
