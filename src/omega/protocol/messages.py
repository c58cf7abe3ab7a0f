"""Message types shared by device and server: one shape per message, on both sides.

Patterns never carry item ids. A pattern names content by *codebook cells*: the
catalog's content embeddings are partitioned into K cells (k-means centroids that the
constellation publishes with the catalog, identified by ``codebook_id``), and a
pattern's embeddings are the centroids of the cells it names. That keeps a pattern to a
few bytes on the wire (a push of dozens of patterns fits in ~1 KB) and generalises each
viewer's history to groups of titles before anything leaves the TV.

Pattern shapes by task:

- ``preference``: ``cells=(c,)`` — in this context the viewer succeeds with content in c.
- ``recommendation``: ``cells=(a, b)`` — after content in a, content in b succeeds next.
- ``discovery``: ``cells=(c,)`` — content in c that was new to the viewer and succeeded.
- ``behaviour``: ``cells=(c,)`` — content in c the viewer abandons (low success rate).
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_TYPE",
    "PROTOCOL_VERSION",
    "Attestation",
    "ConsolidatedPattern",
    "ContentUpdate",
    "CowatchCursor",
    "CowatchPage",
    "CowatchRow",
    "DeviceCertificate",
    "FrequencyReport",
    "ItemScore",
    "Message",
    "Pattern",
    "PatternContext",
    "ProblemDetail",
    "PullRequest",
    "PullResponse",
    "PushAck",
    "PushRequest",
    "Registration",
    "RegistrationResponse",
    "Rejection",
    "ServerEvent",
    "SharedReport",
    "SyncRequest",
    "SyncResponse",
    "TaskType",
    "TokenRefresh",
    "Trend",
    "Vector",
]

#: Bumped when a message shape changes incompatibly; also the codec's version byte.
PROTOCOL_VERSION = 2

TaskType = Literal["preference", "recommendation", "discovery", "behaviour"]
TimeBucket = Literal["morning", "afternoon", "evening", "night", "any"]
DayType = Literal["weekday", "weekend", "any"]


class Vector(msgspec.Struct, frozen=True, kw_only=True):
    """A quantised embedding: f16 little-endian, or int8 with one scale (x ≈ q * scale)."""

    encoding: Literal["f16", "int8"]
    dim: int
    data: bytes
    scale: float = 1.0


class PatternContext(msgspec.Struct, frozen=True, kw_only=True):
    time_bucket: TimeBucket = "any"
    day_type: DayType = "any"


class Pattern(msgspec.Struct, frozen=True, kw_only=True):
    """A shareable pattern learned on one device (ReasoningBank entry)."""

    id: str
    task: TaskType
    cells: tuple[int, ...]
    context: PatternContext = PatternContext()
    success_rate: float
    support: int
    version: int = 1


class ConsolidatedPattern(msgspec.Struct, frozen=True, kw_only=True):
    """A pattern fused from many viewers and released by a federation round."""

    id: str
    task: TaskType
    cells: tuple[int, ...]
    context: PatternContext = PatternContext()
    success_rate: float
    support: int
    viewers: int
    weight: float
    version: int


class Trend(msgspec.Struct, frozen=True, kw_only=True):
    cell: int
    region: str = "global"
    score: float
    version: int = 0


class ContentUpdate(msgspec.Struct, frozen=True, kw_only=True):
    item_id: str
    embedding: Vector


class FrequencyReport(msgspec.Struct, frozen=True, kw_only=True):
    """One locally differentially private report of a title started (OLH; see
    ``omega.protocol.frequency``): the hash seed, the perturbed bucket and the parameters.
    It names no item: every title hashing to ``value`` under the seed is equally likely."""

    seed: int
    value: int
    buckets: int
    epsilon: float


class SharedReport(msgspec.Struct, frozen=True, kw_only=True):
    """A title started, split between two servers (``omega.protocol.shares``): the DPF
    correction words over a catalog of ``size`` titles, the leader's input share, and the
    helper's input share sealed to the helper's public key. No server alone learns the
    title; the two together learn only the sum over many reports."""

    size: int
    public: bytes
    leader: bytes
    helper: bytes


class ItemScore(msgspec.Struct, frozen=True, kw_only=True):
    """A catalog title's released popularity, in [0, 1]. ``PullResponse.popular``, when
    not empty, is the whole current list, best first (cut to the pull's byte budget)."""

    item_id: str
    score: float


class CowatchRow(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A title's released co-watch neighbours (``docs/cowatch.md``): catalog positions in
    the codebook's order, each with its quantised count of distinct TVs, best first. An
    empty list withdraws the title's earlier row."""

    source: int
    neighbours: list[tuple[int, int]] = []


class CowatchCursor(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """Where a device is in the co-watch table: rows are sent in (version, source) order,
    after this one. ``(0, -1)``: from the start."""

    version: int = 0
    source: int = -1


class CowatchPage(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """Co-watch rows in one pull, and the cursor after the last of them."""

    rows: list[CowatchRow] = []
    cursor: CowatchCursor = CowatchCursor()


class DeviceCertificate(msgspec.Struct, frozen=True, kw_only=True):
    """A manufacturer's statement that ``device_key`` belongs to one of its devices
    (``omega.protocol.attestation``): Ed25519 by the manufacturer's key ``key_id`` over
    the canonical encoding of every other field. Times are whole seconds since the epoch."""

    manufacturer_id: str
    key_id: str
    device_id: str
    model: str
    device_key: bytes  # the device's raw Ed25519 public key (32 bytes)
    not_before: int
    not_after: int
    signature: bytes  # 64 bytes


class Attestation(msgspec.Struct, frozen=True, kw_only=True):
    """A registration's proof of a real device: its certificate, and the device key's
    Ed25519 signature over the registration's fields and ``signed_at`` (the device's clock,
    seconds since the epoch), which the server wants fresh and newer than the last one."""

    certificate: DeviceCertificate
    signed_at: float
    signature: bytes  # 64 bytes


class Registration(msgspec.Struct, frozen=True, kw_only=True, tag="registration", tag_field="msg"):
    device_model: str = "unknown"
    region: str = "global"
    client_version: str = "0.1.0"
    #: Required by a server that refuses unattested devices (the default).
    attestation: Attestation | None = None


class RegistrationResponse(
    msgspec.Struct, frozen=True, kw_only=True, tag="registration_response", tag_field="msg"
):
    viewer_id: str
    access_token: str
    refresh_token: str
    expires_in: int
    #: The constellation's release keys (kid → raw Ed25519 public key), given at
    #: registration: the device pins them and applies only releases they sign.
    release_keys: dict[str, bytes] = {}


class TokenRefresh(msgspec.Struct, frozen=True, kw_only=True, tag="token_refresh", tag_field="msg"):
    refresh_token: str


class PushRequest(msgspec.Struct, frozen=True, kw_only=True, tag="push", tag_field="msg"):
    viewer_id: str
    batch_id: str
    codebook_id: str
    added: list[Pattern] = []
    updated: list[Pattern] = []
    removed: list[str] = []
    client_version: str = "0.1.0"
    reports: list[FrequencyReport] = []
    shares: list[SharedReport] = []


class Rejection(msgspec.Struct, frozen=True, kw_only=True):
    pattern_id: str
    reason: str


class PushAck(msgspec.Struct, frozen=True, kw_only=True, tag="push_ack", tag_field="msg"):
    batch_id: str
    accepted: list[str] = []
    rejected: list[Rejection] = []
    server_version: int = 0


class PullRequest(msgspec.Struct, frozen=True, kw_only=True, tag="pull", tag_field="msg"):
    viewer_id: str
    since_version: int = 0
    max_bytes: int = 5120
    region: str = "global"
    interests: list[int] = []
    #: Co-watch rows wanted after this cursor; None (a device without a co-watch table,
    #: and every device before co-watch existed): none, and no bytes spent on them.
    cowatch: CowatchCursor | None = None


class PullResponse(msgspec.Struct, frozen=True, kw_only=True, tag="pull_response", tag_field="msg"):
    version: int
    patterns: list[ConsolidatedPattern] = []
    removed: list[str] = []
    trends: list[Trend] = []
    content: list[ContentUpdate] = []
    next_sync_after: float = 3600.0
    more: bool = False
    popular: list[ItemScore] = []
    #: Co-watch rows after the request's cursor and the cursor after them (None when
    #: the request asked for none; ``more`` while rows remain).
    cowatch: CowatchPage | None = None


class SyncRequest(msgspec.Struct, frozen=True, kw_only=True, tag="sync", tag_field="msg"):
    """Push and pull in one round trip.

    The answer is sealed to this request's exact bytes (``omega.protocol.signing``):
    ``nonce`` (random, new for each request) makes every request unique, so an older
    answer cannot be replayed to it; ``release_kids`` names the release keys the device
    trusts, so the server can endorse a newer signing key with one of them."""

    pull: PullRequest
    push: PushRequest | None = None
    nonce: bytes = b""
    release_kids: list[str] = []


class SyncResponse(msgspec.Struct, frozen=True, kw_only=True, tag="sync_response", tag_field="msg"):
    pull: PullResponse
    ack: PushAck | None = None


class ServerEvent(msgspec.Struct, frozen=True, kw_only=True, tag="event", tag_field="msg"):
    """Pushed over SSE: a new release or a trend change."""

    kind: Literal["release", "trend"]
    version: int
    data: dict[str, float | int | str] = {}


#: The media type of every error answer, and the base of its ``type`` URIs: each kind of
#: problem gets a stable slug after it (a device tells Omega's refusals from a proxy's by
#: them, ``omega.sync.replies``).
PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE = "https://omega.invalid/problems/"


class ProblemDetail(msgspec.Struct, frozen=True, kw_only=True, tag="problem", tag_field="msg"):
    """RFC 9457 problem details, the body of every error response."""

    title: str
    status: int
    detail: str
    type: str = "about:blank"


Message = (
    Registration
    | RegistrationResponse
    | TokenRefresh
    | PushRequest
    | PushAck
    | PullRequest
    | PullResponse
    | SyncRequest
    | SyncResponse
    | ServerEvent
    | ProblemDetail
)
