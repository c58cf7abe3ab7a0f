"""Strict checks on every message, field by field, naming the first one that is wrong.

msgspec checks types and tags while decoding, and the sync path's bounds too (the
constraints in ``messages``); it checks nothing when a Struct is built in Python.
:func:`validate` covers every rule: bounds on every count, length and number, NaN/Inf,
vector dimensions and payloads, the cell arity of each pattern task, and duplicate ids.
The codec accepts a message when the constrained decoder and the rules across fields
(``_rules``) do, and runs :func:`validate` when they refuse it, for the error's words;
the server may call it on anything it did not get through the codec. The message checks
are here; the rules they are built from are in ``_field_checks``, the checks of the
parts messages carry (patterns, trends, reports, attestations, …) in ``_part_checks``.

Comparisons are written so that NaN fails them (``0.0 <= x <= 1.0`` is False for NaN).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omega.errors import InvalidMessageError, RemoteProtocolError
from omega.protocol._fast import patterns_ok, trends_ok
from omega.protocol._field_checks import (
    INF,
    Violation,
    check_count,
    check_ids,
    check_int,
    check_kid,
    check_text,
    check_unique,
    check_vector,
    is_int,
    is_number,
)
from omega.protocol._limits import (
    EMBEDDING_DIM,
    MAX_ACK_IDS,
    MAX_CELL,
    MAX_CONTENT_UPDATES,
    MAX_COWATCH_PER_PULL,
    MAX_DETAIL_LENGTH,
    MAX_EVENT_FIELDS,
    MAX_EXPIRES_IN,
    MAX_ID_LENGTH,
    MAX_INT8_SCALE,
    MAX_INTERESTS,
    MAX_NONCE,
    MAX_PATTERNS_PER_PULL,
    MAX_PATTERNS_PER_PUSH,
    MAX_POPULAR_PER_PULL,
    MAX_PULL_BYTES,
    MAX_RELEASE_KEYS,
    MAX_REMOVED,
    MAX_REPORTS_PER_PUSH,
    MAX_SHARES_PER_PUSH,
    MAX_SHORT_TEXT,
    MAX_SYNC_AFTER,
    MAX_TOKEN_LENGTH,
    MAX_TRENDS,
    MAX_VECTOR_DIM,
    MAX_VERSION,
    RELEASE_KEY_BYTES,
)
from omega.protocol._part_checks import (
    check_attestation,
    check_consolidated,
    check_content,
    check_cowatch_cursor,
    check_cowatch_row,
    check_item_score,
    check_pattern,
    check_report,
    check_shared,
    check_trend,
)
from omega.protocol.messages import (
    ConsolidatedPattern,
    Message,
    Pattern,
    ProblemDetail,
    PullRequest,
    PullResponse,
    PushAck,
    PushRequest,
    Registration,
    RegistrationResponse,
    ServerEvent,
    SyncRequest,
    SyncResponse,
    TokenRefresh,
    Vector,
)

__all__ = [
    "EMBEDDING_DIM",
    "MAX_CELL",
    "MAX_CONTENT_UPDATES",
    "MAX_ID_LENGTH",
    "MAX_INT8_SCALE",
    "MAX_PATTERNS_PER_PULL",
    "MAX_PATTERNS_PER_PUSH",
    "MAX_POPULAR_PER_PULL",
    "MAX_REMOVED",
    "MAX_TRENDS",
    "MAX_VECTOR_DIM",
    "validate",
    "validate_vector",
]


def validate(msg: Message) -> None:
    """Raise :class:`InvalidMessageError` naming the first field that breaks a rule
    (:class:`RemoteProtocolError` for an object that is no message at all)."""
    check = _CHECKS.get(type(msg))
    if check is None:
        raise RemoteProtocolError(f"not a protocol message: {type(msg).__name__}")
    try:
        check(msg, type(msg).__name__)
    except Violation as exc:
        raise InvalidMessageError(f"invalid {type(msg).__name__}: {exc}") from None


def validate_vector(vector: Vector, *, dim: int | None = EMBEDDING_DIM) -> None:
    """Raise :class:`InvalidMessageError` unless ``vector`` is well formed.

    ``dim=None`` accepts any dimension from 1 to ``MAX_VECTOR_DIM``.
    """
    try:
        check_vector(vector, "vector", dim=dim)
    except Violation as exc:
        raise InvalidMessageError(f"invalid Vector: {exc}") from None


# -- messages -----------------------------------------------------------------------------


def _registration(m: Registration, where: str) -> None:
    check_text(m.device_model, f"{where}.device_model", MAX_SHORT_TEXT)
    check_text(m.region, f"{where}.region", MAX_ID_LENGTH)
    check_text(m.client_version, f"{where}.client_version", MAX_ID_LENGTH)
    if m.attestation is not None:
        check_attestation(m.attestation, f"{where}.attestation")


def _registration_response(m: RegistrationResponse, where: str) -> None:
    check_text(m.viewer_id, f"{where}.viewer_id", MAX_ID_LENGTH)
    check_text(m.access_token, f"{where}.access_token", MAX_TOKEN_LENGTH)
    check_text(m.refresh_token, f"{where}.refresh_token", MAX_TOKEN_LENGTH)
    check_int(m.expires_in, f"{where}.expires_in", 0, MAX_EXPIRES_IN)
    if not isinstance(m.release_keys, dict) or len(m.release_keys) > MAX_RELEASE_KEYS:
        raise Violation(f"{where}.release_keys must map at most {MAX_RELEASE_KEYS} key ids")
    for kid, key in m.release_keys.items():
        check_kid(kid, f"{where}.release_keys key")
        if not isinstance(key, bytes) or len(key) != RELEASE_KEY_BYTES:
            raise Violation(
                f"{where}.release_keys[{kid!r}] must be {RELEASE_KEY_BYTES} raw Ed25519 bytes"
            )


def _token_refresh(m: TokenRefresh, where: str) -> None:
    check_text(m.refresh_token, f"{where}.refresh_token", MAX_TOKEN_LENGTH)


def _push(m: PushRequest, where: str) -> None:
    check_text(m.viewer_id, f"{where}.viewer_id", MAX_ID_LENGTH)
    check_text(m.batch_id, f"{where}.batch_id", MAX_ID_LENGTH)
    check_text(m.codebook_id, f"{where}.codebook_id", MAX_ID_LENGTH)
    check_text(m.client_version, f"{where}.client_version", MAX_ID_LENGTH)
    check_count(m.added, f"{where}.added", MAX_PATTERNS_PER_PUSH)
    check_count(m.updated, f"{where}.updated", MAX_PATTERNS_PER_PUSH)
    if len(m.added) + len(m.updated) > MAX_PATTERNS_PER_PUSH:
        raise Violation(f"{where} carries more than {MAX_PATTERNS_PER_PUSH} patterns")
    if not patterns_ok(m.added, Pattern):
        for i, p in enumerate(m.added):
            check_pattern(p, f"{where}.added[{i}]")
    if not patterns_ok(m.updated, Pattern):
        for i, p in enumerate(m.updated):
            check_pattern(p, f"{where}.updated[{i}]")
    check_ids(m.removed, f"{where}.removed", MAX_REMOVED)
    check_unique([*(p.id for p in m.added), *(p.id for p in m.updated), *m.removed], where)
    check_count(m.reports, f"{where}.reports", MAX_REPORTS_PER_PUSH)
    for i, r in enumerate(m.reports):
        check_report(r, f"{where}.reports[{i}]")
    check_count(m.shares, f"{where}.shares", MAX_SHARES_PER_PUSH)
    for i, sr in enumerate(m.shares):
        check_shared(sr, f"{where}.shares[{i}]")


def _ack(m: PushAck, where: str) -> None:
    check_text(m.batch_id, f"{where}.batch_id", MAX_ID_LENGTH)
    check_ids(m.accepted, f"{where}.accepted", MAX_ACK_IDS)
    check_count(m.rejected, f"{where}.rejected", MAX_ACK_IDS)
    for i, r in enumerate(m.rejected):
        check_text(r.pattern_id, f"{where}.rejected[{i}].pattern_id", MAX_ID_LENGTH)
        check_text(r.reason, f"{where}.rejected[{i}].reason", MAX_SHORT_TEXT)
    check_int(m.server_version, f"{where}.server_version", 0, MAX_VERSION)


def _pull(m: PullRequest, where: str) -> None:
    check_text(m.viewer_id, f"{where}.viewer_id", MAX_ID_LENGTH)
    check_int(m.since_version, f"{where}.since_version", 0, MAX_VERSION)
    check_int(m.max_bytes, f"{where}.max_bytes", 1, MAX_PULL_BYTES)
    check_text(m.region, f"{where}.region", MAX_ID_LENGTH)
    check_count(m.interests, f"{where}.interests", MAX_INTERESTS)
    for i, cell in enumerate(m.interests):
        check_int(cell, f"{where}.interests[{i}]", 0, MAX_CELL - 1)
    if m.cowatch is not None:
        check_cowatch_cursor(m.cowatch, f"{where}.cowatch")


def _pull_response(m: PullResponse, where: str) -> None:
    check_int(m.version, f"{where}.version", 0, MAX_VERSION)
    check_count(m.patterns, f"{where}.patterns", MAX_PATTERNS_PER_PULL)
    if not patterns_ok(m.patterns, ConsolidatedPattern):
        for i, p in enumerate(m.patterns):
            check_consolidated(p, f"{where}.patterns[{i}]")
    check_ids(m.removed, f"{where}.removed", MAX_PATTERNS_PER_PULL)
    check_unique([*(p.id for p in m.patterns), *m.removed], where)
    check_count(m.trends, f"{where}.trends", MAX_TRENDS)
    if not trends_ok(m.trends):
        for i, t in enumerate(m.trends):
            check_trend(t, f"{where}.trends[{i}]")
    check_count(m.content, f"{where}.content", MAX_CONTENT_UPDATES)
    for i, c in enumerate(m.content):
        check_content(c, f"{where}.content[{i}]")
    if not (is_number(m.next_sync_after) and 0.0 <= m.next_sync_after <= MAX_SYNC_AFTER):
        raise Violation(
            f"{where}.next_sync_after must be in [0, {MAX_SYNC_AFTER:.0f}] seconds, "
            f"got {m.next_sync_after!r}"
        )
    if not isinstance(m.more, bool):
        raise Violation(f"{where}.more must be a bool")
    check_count(m.popular, f"{where}.popular", MAX_POPULAR_PER_PULL)
    for i, s in enumerate(m.popular):
        check_item_score(s, f"{where}.popular[{i}]")
    if m.cowatch is not None:
        check_cowatch_cursor(m.cowatch.cursor, f"{where}.cowatch.cursor")
        check_count(m.cowatch.rows, f"{where}.cowatch.rows", MAX_COWATCH_PER_PULL)
        for i, row in enumerate(m.cowatch.rows):
            check_cowatch_row(row, f"{where}.cowatch.rows[{i}]")


def _sync(m: SyncRequest, where: str) -> None:
    if not isinstance(m.pull, PullRequest):
        raise Violation(f"{where}.pull must be a PullRequest")
    _pull(m.pull, f"{where}.pull")
    if m.push is not None:
        if not isinstance(m.push, PushRequest):
            raise Violation(f"{where}.push must be a PushRequest")
        _push(m.push, f"{where}.push")
        if m.push.viewer_id != m.pull.viewer_id:
            raise Violation(f"{where}: push and pull name different viewers")
    if not isinstance(m.nonce, bytes) or len(m.nonce) > MAX_NONCE:
        raise Violation(f"{where}.nonce must be at most {MAX_NONCE} bytes")
    check_count(m.release_kids, f"{where}.release_kids", MAX_RELEASE_KEYS)
    for i, kid in enumerate(m.release_kids):
        check_kid(kid, f"{where}.release_kids[{i}]")


def _sync_response(m: SyncResponse, where: str) -> None:
    if not isinstance(m.pull, PullResponse):
        raise Violation(f"{where}.pull must be a PullResponse")
    _pull_response(m.pull, f"{where}.pull")
    if m.ack is not None:
        if not isinstance(m.ack, PushAck):
            raise Violation(f"{where}.ack must be a PushAck")
        _ack(m.ack, f"{where}.ack")


def _event(m: ServerEvent, where: str) -> None:
    if m.kind not in ("release", "trend"):
        raise Violation(f"{where}.kind must be 'release' or 'trend', got {m.kind!r}")
    check_int(m.version, f"{where}.version", 0, MAX_VERSION)
    if not isinstance(m.data, dict) or len(m.data) > MAX_EVENT_FIELDS:
        raise Violation(f"{where}.data must be a mapping of at most {MAX_EVENT_FIELDS} fields")
    for key, value in m.data.items():
        check_text(key, f"{where}.data key", MAX_ID_LENGTH)
        if isinstance(value, str):
            check_text(value, f"{where}.data[{key!r}]", MAX_SHORT_TEXT, empty=True)
        elif is_int(value):
            check_int(value, f"{where}.data[{key!r}]", -(2**63), 2**64 - 1)
        elif not (is_number(value) and -INF < value < INF):
            raise Violation(f"{where}.data[{key!r}] must be a finite number or a string")


def _problem(m: ProblemDetail, where: str) -> None:
    check_text(m.title, f"{where}.title", MAX_SHORT_TEXT)
    check_int(m.status, f"{where}.status", 100, 599)
    check_text(m.detail, f"{where}.detail", MAX_DETAIL_LENGTH, empty=True)
    check_text(m.type, f"{where}.type", MAX_SHORT_TEXT * 4)


_CHECKS: dict[type, Callable[[Any, str], None]] = {
    Registration: _registration,
    RegistrationResponse: _registration_response,
    TokenRefresh: _token_refresh,
    PushRequest: _push,
    PushAck: _ack,
    PullRequest: _pull,
    PullResponse: _pull_response,
    SyncRequest: _sync,
    SyncResponse: _sync_response,
    ServerEvent: _event,
    ProblemDetail: _problem,
}
