"""What each core (operator) tool does, over the admin API (:class:`Operator`).

Decisions, recorded here and in docs/mcp.md:

- ``omega_init`` initialises an empty deployment; it does not change a running
  server's settings (they are fixed at start, from ``OMEGA_*``). It publishes the
  codebook when none is current (a different current one is kept unless
  ``replace_codebook``), trusts the given manufacturer keys (idempotent), and says what
  is still missing.
- ``omega_register_viewer`` provisions a viewer the operator names and returns its
  first credentials (``POST /api/omega/admin/viewers``): for a device that cannot attest
  itself. Attested TVs register themselves.
- ``omega_aggregate`` runs a federation round now; ``immediate=False`` runs it only when
  contributions are pending.
- ``omega_distribute`` announces the current release on the event stream, to everyone
  or to named viewers, so the TVs listening sync now (``POST /api/omega/admin/announce``);
  TVs that only poll take it at their next sync.
"""

from __future__ import annotations

from typing import Any, Literal

from omega.mcp.core_models import (
    AggregateResult,
    CodebookState,
    ConsensusResult,
    ConstellationStats,
    DistributeResult,
    InitConfig,
    InitResult,
    PruneResult,
    RegisteredViewer,
    TrustedKey,
    ViewerMetadata,
)
from omega.mcp.operator import Operator

__all__ = ["TOP_PATTERNS", "Core"]

#: Released patterns ``omega_stats`` lists, strongest first.
TOP_PATTERNS = 10


class Core:
    """The core tools' work against one constellation."""

    def __init__(self, operator: Operator) -> None:
        self.operator = operator

    async def init(self, config: InitConfig) -> InitResult:
        notes: list[str] = []
        codebook = await self._codebook(config, notes)
        trusted = []
        for key in config.manufacturers:
            _, new = await self.operator.trust(key.model_dump())
            status: Literal["trusted", "already trusted"] = "trusted" if new else "already trusted"
            trusted.append(
                TrustedKey(manufacturer_id=key.manufacturer_id, key_id=key.key_id, status=status)
            )
        stats = await self.stats()
        if stats.viewers == 0 and not config.manufacturers:
            notes.append(
                "no viewers yet: trust your TV makers' keys (config.manufacturers) so attested "
                "TVs can register, or provision viewers with omega_register_viewer"
            )
        return InitResult(codebook=codebook, manufacturers=trusted, stats=stats, notes=notes)

    async def _codebook(self, config: InitConfig, notes: list[str]) -> CodebookState:
        current = await self.operator.codebook()
        wanted = config.codebook
        if wanted is None:
            if current is None:
                notes.append(
                    "no codebook yet: TVs keep their own content cells and nothing can be "
                    "released; give config.codebook"
                )
                return CodebookState(
                    status="missing", codebook_id=None, k=None, dim=None, sequence=None
                )
            return _state("kept", current)
        same = current is not None and current["codebook_id"] == wanted.codebook_id
        if current is not None and not same and not config.replace_codebook:
            notes.append(
                f"codebook {current['codebook_id']!r} is current and was kept; "
                "replace_codebook=true publishes yours (every TV then relearns in its cells)"
            )
            return _state("kept", current)
        if current is not None and same and not config.replace_codebook:
            return _state("kept", current)
        published = await self.operator.publish_codebook(wanted.model_dump())
        return _state("published", published)

    async def register_viewer(self, viewer_id: str, metadata: ViewerMetadata) -> RegisteredViewer:
        answer = await self.operator.provision({"viewer_id": viewer_id, **metadata.model_dump()})
        return RegisteredViewer.model_validate(
            {k: answer[k] for k in RegisteredViewer.model_fields if k in answer}
        )

    async def aggregate(self, immediate: bool) -> AggregateResult:
        if not immediate:
            stats = await self.stats()
            if stats.pending_contributions == 0:
                reason = "no contributions are pending; immediate=true runs a round anyway"
                return _aggregate(ran=False, reason=reason, version=stats.version, result={})
        answer = await self.operator.run_round()
        return _aggregate(
            ran=True, reason="ran", version=answer["version"], result=answer["result"]
        )

    async def distribute(
        self, viewer_ids: list[str], priority: Literal["normal", "high"]
    ) -> DistributeResult:
        answer = await self.operator.announce({"viewer_ids": viewer_ids, "priority": priority})
        return DistributeResult(viewer_ids=viewer_ids, priority=priority, **answer)

    async def stats(self) -> ConstellationStats:
        counts = await self.operator.stats()
        release = await self.operator.release(TOP_PATTERNS)
        return ConstellationStats.model_validate({**counts, "top_patterns": release["patterns"]})

    async def consensus(self, pattern_id: str) -> ConsensusResult:
        return ConsensusResult.model_validate(await self.operator.consensus(pattern_id))

    async def prune(self, min_quality: float | None, max_age_s: float | None) -> PruneResult:
        body = {"min_quality": min_quality, "max_age_s": max_age_s}
        return PruneResult.model_validate(await self.operator.prune(body))


def _state(status: Literal["published", "kept"], doc: dict[str, Any]) -> CodebookState:
    return CodebookState(
        status=status,
        codebook_id=doc["codebook_id"],
        k=doc["k"],
        dim=doc["dim"],
        sequence=doc["sequence"],
    )


def _aggregate(*, ran: bool, reason: str, version: int, result: dict[str, Any]) -> AggregateResult:
    stats = result.get("stats") or {}
    return AggregateResult(
        ran=ran,
        reason=reason,
        status=result.get("status"),
        version=version,
        applied=result.get("applied", 0),
        live=result.get("live", 0),
        released=result.get("released", 0),
        upserted=result.get("upserted", 0),
        removed=result.get("removed", 0),
        too_few_viewers=stats.get("too_few_viewers", 0),
        disputed=stats.get("disputed", 0),
        cowatch_rows=result.get("cowatch_rows", 0),
        cowatch_error=result.get("cowatch_error"),
        seconds=round(float(result.get("seconds", 0.0)), 4),
    )
