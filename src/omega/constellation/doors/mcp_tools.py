"""``/mcp`` on ``omega serve``: the operator's MCP tools over streamable HTTP.

- **Behind the admin token**: every request must carry ``Authorization: Bearer <admin
  token>``, checked before the MCP session manager sees it (401 problem otherwise).
- **In the app's lifespan**: the SDK's session manager runs a task group for its
  sessions, which must be running when a request reaches it; a mounted sub-app's own
  lifespan never runs under FastAPI. :func:`open_mcp`, one of the doors the lifespan
  opens (``omega.constellation.doors``), enters :func:`mcp_door`: it starts the manager
  on the first ``/mcp``
  request (so a server no assistant uses never imports the SDK: ~0.5 s, ~50 MB) in a
  task of its own, and stops it at shutdown.
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
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from omega.constellation._runtime import Runtime, load_admin_token
from omega.constellation.guards import bearer_token
from omega.constellation.problems import problem_response
from omega.constellation.settings import Settings
from omega.errors import AuthError

if TYPE_CHECKING:
    from omega.mcp import Operator

__all__ = ["MCP_PATH", "McpDoor", "McpEndpoint", "mcp_door", "open_mcp"]

log = logging.getLogger("omega.constellation")
MCP_PATH = "/mcp"


class McpEndpoint:
    """The ASGI endpoint at ``/mcp``: checks the admin token, then hands the request to
    the MCP session manager (started by the door on first use)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        door = getattr(request.app.state, "mcp_door", None)
        runtime = getattr(request.app.state, "runtime", None)
        if not isinstance(door, McpDoor) or not isinstance(runtime, Runtime):
            answer = problem_response(503, "the MCP endpoint is not running", slug="unavailable")
            await answer(scope, receive, send)
            return
        try:
            runtime.admin.check(bearer_token(request))
        except AuthError as exc:
            await problem_response(401, str(exc), slug="unauthorized")(scope, receive, send)
            return
        try:
            handler = await door.handler()
        except Exception as exc:  # the server keeps serving everything else
            log.error("the MCP endpoint could not start", exc_info=exc)
            detail = f"the MCP endpoint could not start: {exc}"
            await problem_response(503, detail, slug="unavailable")(scope, receive, send)
            return
        await handler(scope, receive, send)


class McpDoor:
    """The core tools' streamable-HTTP session manager, started on first use and stopped
    by :meth:`aclose`. The manager's task group lives in a task of its own, entered and
    left there: the app's lifespan may be driven from one task and closed from another
    (an in-process transport in tests), which a task group must not see."""

    def __init__(self, app: FastAPI, runtime: Runtime) -> None:
        self._app, self._runtime = app, runtime
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._handler: ASGIApp | None = None
        self._operator: Operator | None = None

    async def handler(self) -> ASGIApp:
        async with self._lock:
            if self._handler is None:
                self._handler = await self._start()
            return self._handler

    async def _start(self) -> ASGIApp:
        # Imported on first use: see the module docstring.
        from mcp.server.transport_security import TransportSecuritySettings

        from omega.mcp import Operator, core_server
        from omega.sync import AsgiTransport

        hosts = list(self._runtime.settings.mcp_allowed_hosts)
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=hosts,
            allowed_origins=[f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")],
        )
        # The lifespan is running: the transport only calls the app's routes.
        token = load_admin_token(self._runtime.settings)
        self._operator = Operator(AsgiTransport(self._app), token)
        server = core_server(self._operator)
        server.streamable_http_app(streamable_http_path=MCP_PATH, transport_security=security)
        manager = server.session_manager
        ready = asyncio.Event()

        async def serve() -> None:
            async with manager.run():
                ready.set()
                await self._stop.wait()

        self._task = asyncio.create_task(serve(), name="omega-mcp-sessions")
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._task.done():
            self._task.result()  # why it could not start
        return manager.handle_request

    async def aclose(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):  # its failure was said when it started
                await self._task
        if self._operator is not None:
            await self._operator.aclose()


@contextlib.asynccontextmanager
async def mcp_door(app: FastAPI, runtime: Runtime) -> AsyncIterator[None]:
    """Open ``/mcp`` while the app serves (the manager starts on the first request)."""
    door = McpDoor(app, runtime)
    app.state.mcp_door = door
    try:
        yield
    finally:
        app.state.mcp_door = None
        await door.aclose()


async def open_mcp(app: Any, settings: Settings, stack: contextlib.AsyncExitStack) -> str | None:
    """The doors hook: ``/mcp`` when ``settings.mcp`` (the route is ``create_app``'s)."""
    if not settings.mcp:
        return None
    await stack.enter_async_context(mcp_door(app, app.state.runtime))
    return f"MCP tools at {MCP_PATH} (streamable HTTP, admin token; started on first use)"
