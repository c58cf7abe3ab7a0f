"""The viewer tools: one TV's brain and its sync, as an MCP server (``omega mcp viewer``).

Each tool is a thin async shell: it checks nothing the schema does not, runs the
session's blocking method on a worker thread and answers with a pydantic model (so the
tool has an output schema and its result structured content). Failures are tool errors
with one sentence (``omega.mcp.tool_errors``).
"""

from __future__ import annotations

from typing import Annotated

import anyio
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

from omega.mcp.server import ToolSpec, build_server
from omega.mcp.tool_errors import tool_errors
from omega.mcp.viewer import ViewerSession
from omega.mcp.viewer_models import (
    Action,
    BehaviorMetadata,
    ExportedPatterns,
    Recommendations,
    RecommendContext,
    RecommendFilters,
    SyncOutcome,
    TrackedEvent,
    ViewerConfig,
    ViewerInitialised,
    ViewerStats,
)

__all__ = ["VIEWER_TOOLS", "viewer_server"]

#: The tools' names, in the order they are listed.
VIEWER_TOOLS = (
    "viewer_init",
    "viewer_track_behavior",
    "viewer_get_recommendations",
    "viewer_sync",
    "viewer_stats",
    "viewer_export_patterns",
)

_INSTRUCTIONS = (
    "Tools for one TV's on-device recommender (Omega). Call viewer_init first (with the "
    "catalog's titles), then track what the household watches, skips, rates, searches and "
    "browses, and ask for recommendations: each comes with its score and a reason. "
    "viewer_sync exchanges patterns (never titles or history) with the constellation."
)
_READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


def viewer_server(session: ViewerSession) -> MCPServer:
    """An MCP server whose ``viewer_*`` tools act on ``session`` (the caller closes it)."""
    return build_server("omega-viewer", _INSTRUCTIONS, _tools(session))


def _tools(session: ViewerSession) -> list[ToolSpec]:
    async def viewer_init(
        viewer_id: Annotated[
            str,
            Field(
                min_length=1,
                max_length=128,
                description="The viewer: its constellation id when an operator provisioned "
                "it (omega_register_viewer), else the household's name on this TV.",
            ),
        ],
        config: ViewerConfig | None = None,
    ) -> ViewerInitialised:
        """Create (or reopen) this TV's brain, import catalog titles (embedded here with
        the MiniLM model), and set the region and any provisioned credentials."""
        with tool_errors():
            return await anyio.to_thread.run_sync(session.init, viewer_id, config or ViewerConfig())

    async def viewer_track_behavior(
        action: Annotated[Action, Field(description="view, skip, rate, search or browse.")],
        media_id: Annotated[
            str | None,
            Field(
                max_length=128,
                description="The catalog title concerned (search: the one chosen, if any).",
            ),
        ] = None,
        metadata: BehaviorMetadata | None = None,
    ) -> TrackedEvent:
        """Record one interaction; it becomes an episode with a reward and a critique, and
        the brain learns from it at once. Unknown titles are refused (nothing stored)."""
        with tool_errors():
            meta = metadata or BehaviorMetadata()
            return await anyio.to_thread.run_sync(session.track, action, media_id, meta)

    async def viewer_get_recommendations(
        context: RecommendContext | None = None,
        k: Annotated[int, Field(ge=1, le=100, description="How many titles.")] = 10,
        filters: RecommendFilters | None = None,
        explain: Annotated[
            bool, Field(description="Also break each score into the signals it is made of.")
        ] = False,
    ) -> Recommendations:
        """Titles not yet watched or skipped, best first, each with its score and the
        reason it is offered."""
        with tool_errors():
            return await anyio.to_thread.run_sync(session.recommend, context, k, filters, explain)

    async def viewer_sync(
        force: Annotated[
            bool, Field(description="Sync even if the constellation asked to wait.")
        ] = False,
    ) -> SyncOutcome:
        """Push this TV's shareable patterns and pull the constellation's release (needs
        --server); without force, only when the next sync is due."""
        with tool_errors():
            return await anyio.to_thread.run_sync(session.sync, force)

    async def viewer_stats() -> ViewerStats:
        """Counts, footprint, memory tiers, skills, the brain's loops and the sync state."""
        with tool_errors():
            return await anyio.to_thread.run_sync(session.stats)

    async def viewer_export_patterns(
        min_quality: Annotated[
            float | None,
            Field(ge=0.0, le=1.0, description="Success-rate floor (default the brain's, 0.7)."),
        ] = None,
    ) -> ExportedPatterns:
        """The patterns this TV may share: content cells and success rates, never titles
        (success ≥ min_quality, support ≥ 3 episodes)."""
        with tool_errors():
            return await anyio.to_thread.run_sync(session.export, min_quality)

    return [
        (viewer_init, None),
        (viewer_track_behavior, None),
        (viewer_get_recommendations, None),
        (viewer_sync, ToolAnnotations(open_world_hint=True)),
        (viewer_stats, _READ_ONLY),
        (viewer_export_patterns, _READ_ONLY),
    ]
