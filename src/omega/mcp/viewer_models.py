"""What the viewer tools take and return: pydantic models, so each tool publishes an
input and an output schema and answers with structured content."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Action",
    "BehaviorMetadata",
    "CatalogEntry",
    "ExportedPattern",
    "ExportedPatterns",
    "ProvisionedCredentials",
    "RecommendContext",
    "RecommendFilters",
    "Recommendations",
    "RecommendedTitle",
    "SyncOutcome",
    "SyncStatus",
    "TrackedEvent",
    "ViewerConfig",
    "ViewerInitialised",
    "ViewerStats",
]

Action = Literal["view", "skip", "rate", "search", "browse"]
#: Titles one ``viewer_init`` may import (each is embedded on this machine).
MAX_CATALOG = 10_000


class _Strict(BaseModel):
    """Unknown fields are refused: a misspelt option must not be ignored."""

    model_config = ConfigDict(extra="forbid")


class CatalogEntry(_Strict):
    """A title the TV can offer; it is embedded with the real MiniLM model on import."""

    item_id: str = Field(min_length=1, max_length=128)
    title: str = Field(min_length=1, max_length=512)
    genres: list[str] = Field(default_factory=list, max_length=32)
    year: int | None = Field(default=None, ge=1800, le=2200)
    runtime_min: int | None = Field(default=None, ge=1, le=10_000)
    description: str = Field(default="", max_length=4000)


class ProvisionedCredentials(_Strict):
    """What ``omega_register_viewer`` returns for a viewer the operator provisioned:
    installed in the brain, the TV syncs as that viewer without registering itself.
    ``release_keys``: kid → base64 of the raw Ed25519 public key, pinned on install."""

    viewer_id: str = Field(min_length=1, max_length=128)
    access_token: str = Field(min_length=1, max_length=4096)
    refresh_token: str = Field(min_length=1, max_length=4096)
    release_keys: dict[str, str] = Field(min_length=1, max_length=16)


class ViewerConfig(_Strict):
    """``viewer_init``'s settings: titles to import, the region sent to the
    constellation, and credentials an operator provisioned (optional)."""

    catalog: list[CatalogEntry] = Field(default_factory=list, max_length=MAX_CATALOG)
    region: str = Field(default="global", min_length=1, max_length=128)
    credentials: ProvisionedCredentials | None = None


class ViewerInitialised(BaseModel):
    """``registered_as``: the viewer id the constellation knows this TV by (None until
    its first sync registers it, or credentials are installed)."""

    viewer_id: str
    directory: str
    created: bool
    imported: int
    items: int
    codebook_id: str
    region: str
    server: str | None
    registered_as: str | None


class BehaviorMetadata(_Strict):
    """Details of one interaction; which apply depends on the action:
    view — watch_fraction (0..1), duration_s, completed; skip — at_seconds;
    rate — stars (0.5..5); search — query, results (ids shown), the chosen title is
    media_id; browse — items (ids browsed besides media_id)."""

    watch_fraction: float | None = Field(default=None, ge=0.0, le=1.0)
    duration_s: float | None = Field(default=None, ge=0.0, le=1e6)
    completed: bool = False
    at_seconds: float = Field(default=0.0, ge=0.0, le=1e6)
    stars: float | None = Field(default=None, ge=0.5, le=5.0)
    query: str | None = Field(default=None, min_length=1, max_length=256)
    results: list[str] = Field(default_factory=list, max_length=200)
    items: list[str] = Field(default_factory=list, max_length=200)


class TrackedEvent(BaseModel):
    """The episode an interaction became: its reward in [0, 1] and critique."""

    episode: int
    action: Action
    reward: float
    success: bool
    critique: str
    time_bucket: str
    day_type: str


class RecommendContext(_Strict):
    """When to recommend for (default: now on the TV's clock)."""

    time_bucket: Literal["morning", "afternoon", "evening", "night"]
    day_type: Literal["weekday", "weekend"]


class RecommendFilters(_Strict):
    genres: list[str] = Field(default_factory=list, max_length=32)
    max_runtime_min: int | None = Field(default=None, ge=1, le=10_000)
    exclude: list[str] = Field(default_factory=list, max_length=1000)


class RecommendedTitle(BaseModel):
    """A title with its score and the reason it is offered; ``signals`` (when asked for
    with ``explain``, else empty): what the score is made of."""

    item_id: str
    title: str
    score: float
    reason: str
    signals: dict[str, float] = Field(default_factory=dict)


class Recommendations(BaseModel):
    """Best first. ``brain_ms``: the brain's own time for this ranking (the rest of a
    call's latency is the tool's and the transport's)."""

    items: list[RecommendedTitle]
    brain_ms: float


class SyncStatus(BaseModel):
    """The device runtime's state (``omega.sync.RuntimeStatus``); times are seconds
    since the epoch on the TV's clock."""

    server: str
    state: str
    syncs: int
    failures: int
    last_success_at: float | None
    last_error: str | None
    next_sync_at: float | None


class SyncOutcome(BaseModel):
    """``synced``: whether this call synced (else ``reason`` says why not); ``result``
    what the sync did (``omega.sync.SyncResult``)."""

    synced: bool
    reason: str
    result: dict[str, Any] | None
    status: SyncStatus


class ViewerStats(BaseModel):
    """The brain's counts, footprint, memory tiers, skills and loops, and the sync."""

    viewer_id: str | None
    directory: str
    items: int
    episodes: int
    patterns: int
    shareable_patterns: int
    collective_patterns: int
    outbox: int
    codebook_id: str
    codebook_cells: int
    release_version: int
    last_sync: float | None
    footprint_bytes: int
    tiers: dict[str, Any]
    skills: dict[str, Any]
    loops: dict[str, Any]
    sync: SyncStatus | None


class ExportedPattern(BaseModel):
    """A pattern this TV may share: content by codebook cells, never titles."""

    id: str
    task: str
    cells: list[int]
    time_bucket: str
    day_type: str
    success_rate: float
    support: int
    version: int


class ExportedPatterns(BaseModel):
    min_quality: float
    patterns: list[ExportedPattern]
