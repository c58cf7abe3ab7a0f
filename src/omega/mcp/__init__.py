"""MCP tools for AI assistants, over the official SDK (``mcp``'s ``MCPServer``).

- **Viewer tools** (``viewer_*``, :func:`viewer_server`): one TV's brain and its sync
  (:class:`ViewerSession`); ``omega mcp viewer --brain DIR [--server URL]`` on stdio.
- **Core tools** (``omega_*``, :func:`core_server`): the constellation as its operator
  sees it, through the admin API (:class:`Operator`); ``omega mcp core --server URL`` on
  stdio, and ``/mcp`` on ``omega serve`` over streamable HTTP behind the admin token.

Every tool answers with a pydantic model (an output schema, structured content); bad
arguments and failures are tool errors with one sentence (``tool_errors``).
"""

from __future__ import annotations

from omega.mcp.core_server import CORE_TOOLS, core_server
from omega.mcp.operator import Operator
from omega.mcp.tool_errors import ArgumentCheck, tool_errors
from omega.mcp.viewer import ViewerOptions, ViewerSession
from omega.mcp.viewer_server import VIEWER_TOOLS, viewer_server

__all__ = [
    "CORE_TOOLS",
    "VIEWER_TOOLS",
    "ArgumentCheck",
    "Operator",
    "ViewerOptions",
    "ViewerSession",
    "core_server",
    "tool_errors",
    "viewer_server",
]
