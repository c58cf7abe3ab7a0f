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

import sys
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from omega.protocol._limits import (
    MAX_ACK_IDS,
    MAX_CELL,
    MAX_CONTENT_UPDATES,
    MAX_COUNT,
    MAX_COWATCH_NEIGHBOURS,
    MAX_COWATCH_PER_PULL,
    MAX_ID_LENGTH,
    MAX_INTERESTS,
    MAX_NONCE,
    MAX_PATTERNS_PER_PULL,
    MAX_PATTERNS_PER_PUSH,
    MAX_POPULAR_PER_PULL,
    MAX_POSITION,
    MAX_PULL_BYTES,
    MAX_RELEASE_KEYS,
    MAX_REMOVED,
    MAX_REPORT_BUCKETS,
    MAX_REPORT_EPSILON,
    MAX_REPORT_SEED,
    MAX_REPORTS_PER_PUSH,
    MAX_SHARE_PART,
    MAX_SHARED_CATALOG,
    MAX_SHARES_PER_PUSH,
    MAX_SHORT_TEXT,
    MAX_SYNC_AFTER,
    MAX_TRENDS,
    MAX_VERSION,
)

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

# The bounds of the sync path's fields, as msgspec constraints: a decoder checks them in C
# while it builds the message, so ``validation`` is left only the rules across fields
# (``omega.protocol._fast``). A Struct built in Python is checked by nothing until the
# codec encodes it. The messages off the sync path keep their bounds in ``validation``.
_FINITE = sys.float_info.max  # msgspec takes no infinite bound; x <= this is x < inf
Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
Cell = Annotated[int, Meta(ge=0, lt=MAX_CELL)]
Count = Annotated[int, Meta(ge=1, le=MAX_COUNT)]
Version = Annotated[int, Meta(ge=0, le=MAX_VERSION)]
Position = Annotated[int, Meta(ge=0, le=MAX_POSITION)]
Rate = Annotated[float, Meta(ge=0.0, le=1.0)]
Weight = Annotated[float, Meta(ge=0.0, le=_FINITE)]
SharePart = Annotated[bytes, Meta(min_length=1, max_length=MAX_SHARE_PART)]


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

    id: Id
    task: TaskType
    cells: tuple[Cell, ...]
    context: PatternContext = PatternContext()
    success_rate: Rate
    support: Count
    version: Version = 1


class ConsolidatedPattern(msgspec.Struct, frozen=True, kw_only=True):
    """A pattern fused from many viewers and released by a federation round."""

    id: Id
    task: TaskType
    cells: tuple[Cell, ...]
    context: PatternContext = PatternContext()
    success_rate: Rate
    support: Count
    viewers: Count
    weight: Weight
    version: Version


class Trend(msgspec.Struct, frozen=True, kw_only=True):
    cell: Cell
    region: Id = "global"
    score: Annotated[float, Meta(ge=-_FINITE, le=_FINITE)]
    version: Version = 0


class ContentUpdate(msgspec.Struct, frozen=True, kw_only=True):
    item_id: Id
    embedding: Vector


class FrequencyReport(msgspec.Struct, frozen=True, kw_only=True):
    """One locally differentially private report of a title started (OLH; see
    ``omega.protocol.frequency``): the hash seed, the perturbed bucket and the parameters.
    It names no item: every title hashing to ``value`` under the seed is equally likely."""

    seed: Annotated[int, Meta(ge=0, le=MAX_REPORT_SEED)]
    value: Annotated[int, Meta(ge=0)]  # and below ``buckets`` (``_fast``)
    buckets: Annotated[int, Meta(ge=2, le=MAX_REPORT_BUCKETS)]
    epsilon: Annotated[float, Meta(gt=0.0, le=MAX_REPORT_EPSILON)]


class SharedReport(msgspec.Struct, frozen=True, kw_only=True):
    """A title started, split between two servers (``omega.protocol.shares``): the DPF
    correction words over a catalog of ``size`` titles, the leader's input share, and the
    helper's input share sealed to the helper's public key. No server alone learns the
    title; the two together learn only the sum over many reports."""

    size: Annotated[int, Meta(ge=1, le=MAX_SHARED_CATALOG)]
    public: SharePart
    leader: SharePart
    helper: SharePart


class ItemScore(msgspec.Struct, frozen=True, kw_only=True):
    """A catalog title's released popularity, in [0, 1]. ``PullResponse.popular``, when
    not empty, is the whole current list, best first (cut to the pull's byte budget)."""

    item_id: Id
    score: Weight


class CowatchRow(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A title's released co-watch neighbours (``docs/cowatch.md``): catalog positions in
    the codebook's order, each with its quantised count of distinct TVs, best first. An
    empty list withdraws the title's earlier row."""

    source: Position
    neighbours: Annotated[
        list[tuple[Position, Annotated[int, Meta(ge=1, le=MAX_POSITION)]]],
        Meta(max_length=MAX_COWATCH_NEIGHBOURS),
    ] = []


class CowatchCursor(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """Where a device is in the co-watch table: rows are sent in (version, source) order,
    after this one. ``(0, -1)``: from the start."""

    version: Version = 0
    source: Annotated[int, Meta(ge=-1, le=MAX_POSITION)] = -1


class CowatchPage(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """Co-watch rows in one pull, and the cursor after the last of them."""

    rows: Annotated[list[CowatchRow], Meta(max_length=MAX_COWATCH_PER_PULL)] = []
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
    viewer_id: Id
    batch_id: Id
    codebook_id: Id
    #: Each at most ``MAX_PATTERNS_PER_PUSH``, and so are both together (``_fast``).
    added: Annotated[list[Pattern], Meta(max_length=MAX_PATTERNS_PER_PUSH)] = []
    updated: Annotated[list[Pattern], Meta(max_length=MAX_PATTERNS_PER_PUSH)] = []
    removed: Annotated[list[Id], Meta(max_length=MAX_REMOVED)] = []
    client_version: Id = "0.1.0"
    reports: Annotated[list[FrequencyReport], Meta(max_length=MAX_REPORTS_PER_PUSH)] = []
    shares: Annotated[list[SharedReport], Meta(max_length=MAX_SHARES_PER_PUSH)] = []


class Rejection(msgspec.Struct, frozen=True, kw_only=True):
    pattern_id: Id
    reason: Annotated[str, Meta(min_length=1, max_length=MAX_SHORT_TEXT)]


class PushAck(msgspec.Struct, frozen=True, kw_only=True, tag="push_ack", tag_field="msg"):
    batch_id: Id
    accepted: Annotated[list[Id], Meta(max_length=MAX_ACK_IDS)] = []
    rejected: Annotated[list[Rejection], Meta(max_length=MAX_ACK_IDS)] = []
    server_version: Version = 0


class PullRequest(msgspec.Struct, frozen=True, kw_only=True, tag="pull", tag_field="msg"):
    viewer_id: Id
    since_version: Version = 0
    max_bytes: Annotated[int, Meta(ge=1, le=MAX_PULL_BYTES)] = 5120
    region: Id = "global"
    interests: Annotated[list[Cell], Meta(max_length=MAX_INTERESTS)] = []
    #: Co-watch rows wanted after this cursor; None (a device without a co-watch table,
    #: and every device before co-watch existed): none, and no bytes spent on them.
    cowatch: CowatchCursor | None = None


class PullResponse(msgspec.Struct, frozen=True, kw_only=True, tag="pull_response", tag_field="msg"):
    version: Version
    patterns: Annotated[list[ConsolidatedPattern], Meta(max_length=MAX_PATTERNS_PER_PULL)] = []
    removed: Annotated[list[Id], Meta(max_length=MAX_PATTERNS_PER_PULL)] = []
    trends: Annotated[list[Trend], Meta(max_length=MAX_TRENDS)] = []
    content: Annotated[list[ContentUpdate], Meta(max_length=MAX_CONTENT_UPDATES)] = []
    next_sync_after: Annotated[float, Meta(ge=0.0, le=MAX_SYNC_AFTER)] = 3600.0
    more: bool = False
    popular: Annotated[list[ItemScore], Meta(max_length=MAX_POPULAR_PER_PULL)] = []
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
    nonce: Annotated[bytes, Meta(max_length=MAX_NONCE)] = b""
    #: Each a key id (``KID_PATTERN``, checked in ``_fast``).
    release_kids: Annotated[list[str], Meta(max_length=MAX_RELEASE_KEYS)] = []


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
