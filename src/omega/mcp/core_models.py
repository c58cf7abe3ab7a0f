"""What the core (operator) tools take and return: pydantic models, so each tool has an
input and an output schema and answers with structured content. The shapes follow the
admin routes' JSON (``docs/constellation.md``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AggregateResult",
    "ClusterVotes",
    "CodebookDocument",
    "CodebookState",
    "ConsensusResult",
    "ConstellationStats",
    "DistributeResult",
    "InitConfig",
    "InitResult",
    "ManufacturerKey",
    "PruneResult",
    "RegisteredViewer",
    "ReleasedPattern",
    "TrustedKey",
    "ViewerMetadata",
]


class _Strict(BaseModel):
    """Unknown fields are refused: a misspelt option must not be ignored."""

    model_config = ConfigDict(extra="forbid")


class CodebookDocument(_Strict):
    """Content cells for the whole deployment, as ``POST /api/omega/codebook`` takes them:
    ``centroids_f16`` is base64 of k·dim little-endian float16; ``item_ids`` the catalog
    (the domain of popularity reports). Devices adopt it at their next sync."""

    codebook_id: str = Field(min_length=1, max_length=128)
    dim: int = Field(ge=1, le=4096)
    k: int = Field(ge=1, le=65_536)
    centroids_f16: str = Field(min_length=1)
    item_ids: list[str] = Field(default_factory=list)


class ManufacturerKey(_Strict):
    """A TV maker's key whose device certificates the constellation accepts:
    ``public_key`` a PEM block or the 32 raw Ed25519 bytes in base64 or hex."""

    manufacturer_id: str = Field(min_length=1, max_length=64)
    key_id: str = Field(min_length=1, max_length=64)
    public_key: str = Field(min_length=1, max_length=4096)


class InitConfig(_Strict):
    """What an empty deployment needs before TVs can share: a codebook and the makers
    whose TVs may register. ``replace_codebook``: publish ``codebook`` even when another
    is current (every TV then relearns its patterns in the new cells)."""

    codebook: CodebookDocument | None = None
    manufacturers: list[ManufacturerKey] = Field(default_factory=list, max_length=100)
    replace_codebook: bool = False


class CodebookState(BaseModel):
    """``status``: published (by this call), kept (one was current) or missing."""

    status: Literal["published", "kept", "missing"]
    codebook_id: str | None
    k: int | None
    dim: int | None
    sequence: int | None


class TrustedKey(BaseModel):
    manufacturer_id: str
    key_id: str
    status: Literal["trusted", "already trusted"]


class ReleasedPattern(BaseModel):
    """A pattern of the current release: content cells, never titles; ``viewers`` the
    distinct viewers behind it, ``weight`` what devices score with."""

    id: str
    task: str
    cells: list[int]
    context: dict[str, str]
    success_rate: float
    support: int
    viewers: int
    weight: float
    version: int


class CowatchPrivacyStats(BaseModel):
    """Central DP on released co-watch counts (docs/cowatch.md): ε and δ of one private
    release (None: DP is not in effect now), the releases so far and what they spent
    (basic composition), and the folds a private release still owes (above 0 after a
    release failed: the next round retries it)."""

    epsilon_per_release: float | None
    delta_per_release: float | None
    releases: int
    epsilon_spent: float
    delta_spent: float
    unreleased_folds: int = 0


class ConstellationStats(BaseModel):
    """Counts and the current release version (``GET /api/omega/stats``), the
    release's strongest patterns (ids for ``omega_consensus``), and the co-watch DP
    ledger (None when DP is not in effect and never spent anything, or from a server
    before it)."""

    viewers: int
    pending_contributions: int
    live_patterns: int
    released_patterns: int
    version: int
    event_subscribers: int
    sync_rate_per_s: float
    top_patterns: list[ReleasedPattern]
    cowatch_dp: CowatchPrivacyStats | None = None


class InitResult(BaseModel):
    """What ``omega_init`` did, and ``notes`` on what is still missing."""

    codebook: CodebookState
    manufacturers: list[TrustedKey]
    stats: ConstellationStats
    notes: list[str]


class ViewerMetadata(_Strict):
    region: str = Field(default="global", min_length=1, max_length=128)
    device_model: str = Field(default="unknown", min_length=1, max_length=256)
    client_version: str = Field(default="0.1.0", min_length=1, max_length=128)


class RegisteredViewer(BaseModel):
    """A provisioned viewer's first credentials (give them to ``viewer_init`` as
    ``config.credentials``; the refresh token works once, the access token for
    ``expires_in`` seconds) and the release keys its TV pins (kid → base64)."""

    viewer_id: str
    access_token: str
    refresh_token: str
    expires_in: int
    release_keys: dict[str, str]


class AggregateResult(BaseModel):
    """``ran``: whether a round ran (else ``reason``). ``status``: released, unchanged,
    no_codebook or conflict; the counts are the round's (``omega.federation``).
    ``cowatch_error``: why the round's co-watch step stopped (None: it did not); the
    patterns still released, and the next round retries what it left."""

    ran: bool
    reason: str
    status: str | None
    version: int
    applied: int
    live: int
    released: int
    upserted: int
    removed: int
    too_few_viewers: int
    disputed: int
    cowatch_rows: int
    cowatch_error: str | None
    seconds: float


class DistributeResult(BaseModel):
    """``events`` announced release ``version`` on the event stream to ``listeners``."""

    version: int
    events: int
    listeners: int
    viewer_ids: list[str]
    priority: Literal["normal", "high"]


class ClusterVotes(BaseModel):
    """The live cluster behind a pattern id, judged by the round's rules now."""

    task: str
    context: dict[str, str]
    groups: list[int]
    voters: int
    voter_ids: list[str]
    opinions: int
    agreeing: int
    agreement: float
    min_viewers: int
    min_agreement: float
    released_by_rules: bool


class ConsensusResult(BaseModel):
    """Why a pattern is released or withheld: ``released`` is the pattern as devices
    pulled it, ``live`` its cluster now, ``reasons`` one sentence per rule."""

    pattern_id: str
    verdict: Literal["released", "withheld"]
    release_version: int
    released: dict[str, Any] | None
    live: ClusterVotes | None
    reasons: list[str]


class PruneResult(BaseModel):
    """Live patterns dropped for age and for quality, and how many are left (the next
    round releases from what is left)."""

    older: int
    weaker: int
    live_patterns: int
