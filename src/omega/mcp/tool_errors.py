"""How a tool fails: one clear sentence for the model to read, never a traceback.

Two places turn failures into MCP tool errors (``is_error`` results):

- :func:`tool_errors` wraps a tool's body: Omega's own errors (an unknown title, a
  refused sync, a server's problem answer) become a :class:`ToolError` carrying their
  sentence. Anything else is a bug: the SDK logs its traceback on the server and the
  model reads only "Error executing tool <name>".
- :class:`ArgumentCheck` is server middleware that checks a ``tools/call`` before the
  SDK does: an unknown tool name is answered with the tools there are, and arguments
  that do not fit the tool's schema with one line per field (the SDK's own answer is
  pydantic's multi-line report). Nothing runs, so nothing is stored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, TextContent
from pydantic import ValidationError

from omega.errors import OmegaError

__all__ = ["ArgumentCheck", "describe_validation", "tool_errors"]


@contextlib.contextmanager
def tool_errors() -> Iterator[None]:
    """Re-raise Omega's errors as tool errors with their own sentence."""
    try:
        yield
    except OmegaError as exc:
        raise ToolError(str(exc)) from exc


def describe_validation(error: ValidationError) -> str:
    """A pydantic validation error as one line: ``field: what is wrong (got …)``."""
    parts = []
    for problem in error.errors(include_url=False):
        where = ".".join(str(p) for p in problem["loc"]) or "arguments"
        got = problem.get("input")
        shown = "" if problem["type"] == "missing" else f" (got {_short(got)})"
        parts.append(f"{where}: {problem['msg']}{shown}")
    return "; ".join(parts)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class ArgumentCheck:
    """Server middleware: refuse a call to an unknown tool, or with arguments outside the
    tool's schema, with one clear line (see the module docstring)."""

    def __init__(self, tools: Sequence[Tool]) -> None:
        self._tools = {tool.name: tool for tool in tools}

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method != "tools/call" or not isinstance(ctx.params, dict):
            return await call_next(ctx)
        name = ctx.params.get("name")
        arguments = ctx.params.get("arguments") or {}
        tool = self._tools.get(name) if isinstance(name, str) else None
        if tool is None:
            known = ", ".join(sorted(self._tools))
            return _refusal(f"unknown tool {name!r}; this server has: {known}")
        if not isinstance(arguments, dict):
            return await call_next(ctx)  # not a call at all: the SDK's protocol error
        try:
            tool.fn_metadata.validate_arguments(arguments)
        except ValidationError as exc:
            return _refusal(f"bad arguments for {tool.name}: {describe_validation(exc)}")
        return await call_next(ctx)


def _refusal(sentence: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=sentence)], is_error=True)
