"""The constellation's other doors: the same API over gRPC and HTTP/3 (and MCP tools).

The HTTP/1.1 door is uvicorn serving the FastAPI app. Every other door is started by
:func:`open_doors` inside the app's lifespan, on the same event loop, and hands each
request to the same app (:func:`omega.constellation.doors.asgi.call_app`), so one set of
routes, guards and limits answers on all of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from omega.constellation.doors.asgi import AppReply, call_app
from omega.constellation.doors.mcp_tools import open_mcp
from omega.constellation.settings import Settings

__all__ = ["AppReply", "DoorStarter", "call_app", "open_doors"]

#: Starts one door for ``app`` (inside its lifespan) and registers its shutdown on the
#: stack; returns a line for the start-up log, or None when the settings leave it closed.
DoorStarter = Callable[[Any, Settings, contextlib.AsyncExitStack], Awaitable[str | None]]


def _starters() -> list[DoorStarter]:
    """Every door beyond HTTP/1.1, in start order (each checks its own settings)."""
    return [open_mcp, _grpc, _http3]


async def _grpc(app: Any, settings: Settings, stack: contextlib.AsyncExitStack) -> str | None:
    """The gRPC door (``grpc_door``); grpcio is imported only when the settings open it."""
    if settings.grpc_port is None:
        return None
    from omega.constellation.doors.grpc_door import start_grpc

    return await start_grpc(app, settings, stack)


async def _http3(app: Any, settings: Settings, stack: contextlib.AsyncExitStack) -> str | None:
    """The HTTP/3 door (``http3``); aioquic is imported only when the settings open it."""
    if settings.quic_cert is None and settings.quic_key is None:
        return None
    from omega.constellation.doors.http3 import start_http3

    return await start_http3(app, settings, stack)


async def open_doors(app: Any, settings: Settings, stack: contextlib.AsyncExitStack) -> list[str]:
    """Start the doors ``settings`` open; ``stack`` closes them. Returns their log lines."""
    opened = []
    for start in _starters():
        line = await start(app, settings, stack)
        if line is not None:
            opened.append(line)
    return opened
