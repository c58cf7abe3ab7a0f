"""How Omega builds an MCP server: the SDK's ``MCPServer`` with tools made up front and
the argument check (``omega.mcp.tool_errors.ArgumentCheck``) in front of them.

``MCPServer()`` calls ``logging.basicConfig`` to put its own handler on the root logger.
An MCP server is a guest in the process that builds it (``omega serve`` mounts one, the
simulator and the tests build apps): it must not change where that process's logs go,
so the root logger is given a placeholder while the server is built (``basicConfig``
does nothing when the root already has a handler) and left as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp_types import ToolAnnotations

from omega.mcp.tool_errors import ArgumentCheck

__all__ = ["ToolSpec", "build_server"]

ToolSpec = tuple[Callable[..., Any], ToolAnnotations | None]


def build_server(name: str, instructions: str, specs: Sequence[ToolSpec]) -> MCPServer:
    """An MCP server named ``name`` serving the tool functions ``specs`` (each with its
    annotations), listed in that order."""
    tools = [Tool.from_function(fn, annotations=notes) for fn, notes in specs]
    root = logging.getLogger()
    placeholder = logging.NullHandler()
    if not root.handlers:
        root.addHandler(placeholder)
    try:
        return MCPServer(
            name, instructions=instructions, tools=tools, middleware=[ArgumentCheck(tools)]
        )
    finally:
        root.removeHandler(placeholder)
