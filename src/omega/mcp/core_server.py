"""The core tools: the constellation as its operator sees it, as an MCP server
(``omega mcp core --server URL``, and ``/mcp`` on ``omega serve``).

Thin async shells over :class:`omega.mcp.core.Core`, answering with pydantic models
(output schemas, structured content); failures are tool errors with one sentence.
"""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

from omega.mcp.core import Core
from omega.mcp.core_models import (
    AggregateResult,
    ConsensusResult,
    ConstellationStats,
    DistributeResult,
    InitConfig,
    InitResult,
    PruneResult,
    RegisteredViewer,
    ViewerMetadata,
)
from omega.mcp.operator import Operator
from omega.mcp.server import ToolSpec, build_server
from omega.mcp.tool_errors import tool_errors

__all__ = ["CORE_TOOLS", "core_server"]

CORE_TOOLS = (
    "omega_init",
    "omega_register_viewer",
    "omega_aggregate",
    "omega_distribute",
    "omega_stats",
    "omega_consensus",
    "omega_prune",
)
_INSTRUCTIONS = (
    "Operator tools for an Omega constellation, the service that fuses TVs' patterns. "
    "omega_init prepares an empty deployment (codebook, trusted TV makers); "
    "omega_aggregate runs a federation round; omega_consensus says why a pattern is "
    "released or withheld; omega_stats, omega_distribute, omega_prune and "
    "omega_register_viewer manage the rest."
)
_READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_CHANGES = ToolAnnotations(read_only_hint=False, destructive_hint=False)
_DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True)
ViewerId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


def core_server(operator: Operator) -> MCPServer:
    """An MCP server whose ``omega_*`` tools act through ``operator`` (the caller closes it)."""
    return build_server("omega-core", _INSTRUCTIONS, _tools(Core(operator)))


def _tools(core: Core) -> list[ToolSpec]:
    async def omega_init(config: InitConfig | None = None) -> InitResult:
        """Initialise an empty deployment: publish the codebook if none is current, trust
        TV makers' keys; report what is still missing. Running settings are unchanged."""
        with tool_errors():
            return await core.init(config or InitConfig())

    async def omega_register_viewer(
        viewer_id: Annotated[
            ViewerId, Field(description="The new viewer's id: 1-64 of A-Za-z0-9._-")
        ],
        metadata: ViewerMetadata | None = None,
    ) -> RegisteredViewer:
        """Provision a viewer for a device that cannot attest itself; returns its first
        credentials for viewer_init (config.credentials). Keep them secret."""
        with tool_errors():
            return await core.register_viewer(viewer_id, metadata or ViewerMetadata())

    async def omega_aggregate(
        immediate: Annotated[
            bool, Field(description="Run even if no contributions are pending.")
        ] = True,
    ) -> AggregateResult:
        """Run one federation round: fold pushed patterns in, cluster, apply consensus,
        commit a release; counts of what it released, withheld and removed."""
        with tool_errors():
            return await core.aggregate(immediate)

    async def omega_distribute(
        viewer_ids: Annotated[
            list[ViewerId] | None,
            Field(max_length=64, description="Viewers to tell (default: every listener)."),
        ] = None,
        priority: Literal["normal", "high"] = "normal",
    ) -> DistributeResult:
        """Announce the current release on the event stream so TVs that listen sync now."""
        with tool_errors():
            return await core.distribute(viewer_ids or [], priority)

    async def omega_stats() -> ConstellationStats:
        """Viewers, pending contributions, live and released patterns, the release version
        and its strongest patterns (their ids are what omega_consensus explains)."""
        with tool_errors():
            return await core.stats()

    async def omega_consensus(
        pattern_id: Annotated[str, Field(min_length=1, max_length=128)],
    ) -> ConsensusResult:
        """Why a pattern is released or withheld: its voters, the agreement among viewers
        with an opinion on its content, and each consensus rule it meets or fails."""
        with tool_errors():
            return await core.consensus(pattern_id)

    async def omega_prune(
        min_quality: Annotated[
            float | None, Field(gt=0.0, le=1.0, description="Forget patterns below this.")
        ] = None,
        max_age: Annotated[
            float | None, Field(gt=0.0, description="Forget patterns older than this (s).")
        ] = None,
    ) -> PruneResult:
        """Forget live contributions below a quality floor or older than an age; the
        next omega_aggregate releases from what is left."""
        with tool_errors():
            return await core.prune(min_quality, max_age)

    return [
        (omega_init, _CHANGES),
        (omega_register_viewer, _CHANGES),
        (omega_aggregate, _CHANGES),
        (omega_distribute, _CHANGES),
        (omega_stats, _READ_ONLY),
        (omega_consensus, _READ_ONLY),
        (omega_prune, _DESTRUCTIVE),
    ]
