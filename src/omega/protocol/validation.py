"""Strict checks on every message, field by field, naming the first one that is wrong.

msgspec checks types and tags while decoding, and the sync path's bounds too (the
constraints in ``messages``); it checks nothing when a Struct is built in Python.
:func:`validate` covers every rule: bounds on every count, length and number, NaN/Inf,
vector dimensions and payloads, the cell arity of each pattern task, and duplicate ids.
The codec accepts a message when the constrained decoder and the rules across fields
(``_rules``) do, and runs :func:`validate` when they refuse it, for the error's words;
the server may call it on anything it did not get through the codec.

Comparisons are written so that NaN fails them (``0.0 <= x <= 1.0`` is False for NaN).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from omega.errors import InvalidMessageError, RemoteProtocolError
from omega.protocol._fast import ids_ok, patterns_ok, trends_ok
from omega.protocol._limits import (
    CELLS_BY_TASK,
    DAY_TYPES,
    ED25519_KEY_BYTES,
    ED25519_SIGNATURE_BYTES,
    EMBEDDING_DIM,
    KID_PATTERN,
    MAX_ACK_IDS,
    MAX_CELL,
    MAX_CONTENT_UPDATES,
    MAX_COUNT,
    MAX_COWATCH_NEIGHBOURS,
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
    MAX_TIME,
    MAX_TOKEN_LENGTH,
    MAX_TRENDS,
    MAX_VECTOR_DIM,
    MAX_VERSION,
    RELEASE_KEY_BYTES,
    TIME_BUCKETS,
)
from omega.protocol.messages import (
    Attestation,
    ConsolidatedPattern,
    ContentUpdate,
    CowatchCursor,
    CowatchRow,
    FrequencyReport,
    ItemScore,
    Message,
    Pattern,
    PatternContext,
    ProblemDetail,
    PullRequest,
    PullResponse,
    PushAck,
    PushRequest,
    Registration,
    RegistrationResponse,
    ServerEvent,
    SharedReport,
    SyncRequest,
    SyncResponse,
    TokenRefresh,
    Trend,
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

_BYTES_PER_VALUE = {"f16": 2, "int8": 1}
# An IEEE 754 half is NaN or ±Inf exactly when its five exponent bits are all ones: bits
# 2–6 of its high byte, the second of each little-endian pair. These are the 8 such bytes;
# finding one is a C-speed scan, and the protocol needs no numpy (Pyodide has none offline).
_F16_NON_FINITE_HIGH = bytes(b for b in range(256) if b & 0x7C == 0x7C)
_KID = re.compile(KID_PATTERN)
_INF = float("inf")


class _Violation(Exception):
    """Internal: one broken rule, with the path to the offending field."""


def validate(msg: Message) -> None:
    """Raise :class:`InvalidMessageError` naming the first field that breaks a rule
    (:class:`RemoteProtocolError` for an object that is no message at all)."""
    check = _CHECKS.get(type(msg))
    if check is None:
        raise RemoteProtocolError(f"not a protocol message: {type(msg).__name__}")
    try:
        check(msg, type(msg).__name__)
    except _Violation as exc:
        raise InvalidMessageError(f"invalid {type(msg).__name__}: {exc}") from None


def validate_vector(vector: Vector, *, dim: int | None = EMBEDDING_DIM) -> None:
    """Raise :class:`InvalidMessageError` unless ``vector`` is well formed.

    ``dim=None`` accepts any dimension from 1 to ``MAX_VECTOR_DIM``.
    """
    try:
        _check_vector(vector, "vector", dim=dim)
    except _Violation as exc:
        raise InvalidMessageError(f"invalid Vector: {exc}") from None


def _check_vector(vector: Vector, where: str, *, dim: int | None = EMBEDDING_DIM) -> None:
    if not isinstance(vector, Vector):
        raise _Violation(f"{where} must be a Vector")
    per_value = _BYTES_PER_VALUE.get(vector.encoding) if isinstance(vector.encoding, str) else None
    if per_value is None:
        raise _Violation(f"{where}.encoding must be 'f16' or 'int8', got {vector.encoding!r}")
    if dim is None:
        _int(vector.dim, f"{where}.dim", 1, MAX_VECTOR_DIM)
    elif not _is_int(vector.dim) or vector.dim != dim:
        raise _Violation(f"{where}.dim must be {dim}, got {vector.dim!r}")
    if not isinstance(vector.data, bytes) or len(vector.data) != vector.dim * per_value:
        size = len(vector.data) if isinstance(vector.data, bytes) else "not bytes"
        raise _Violation(f"{where}.data must be {vector.dim * per_value} bytes, got {size}")
    if vector.encoding == "int8":
        if not (_is_number(vector.scale) and 0.0 < vector.scale <= MAX_INT8_SCALE):
            raise _Violation(
                f"{where}.scale must be in (0, {MAX_INT8_SCALE:.3g}], got {vector.scale!r}"
            )
    else:
        if not _is_number(vector.scale) or vector.scale != 1.0:
            raise _Violation(f"{where}.scale must be 1.0 for f16, got {vector.scale!r}")
        high = vector.data[1::2]
        if len(high.translate(None, _F16_NON_FINITE_HIGH)) != len(high):
            raise _Violation(f"{where}.data holds NaN or Inf")


# -- primitives ---------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(value: object, where: str, lo: int, hi: int) -> None:
    if not (_is_int(value) and lo <= value <= hi):  # type: ignore[operator]
        raise _Violation(f"{where} must be an integer in [{lo}, {hi}], got {value!r}")


def _text(value: object, where: str, max_length: int, *, empty: bool = False) -> None:
    if not (isinstance(value, str) and (empty or value) and len(value) <= max_length):
        shown = repr(value) if not isinstance(value, str) else f"{len(value)} characters"
        least = 0 if empty else 1
        raise _Violation(f"{where} must be a string of {least}..{max_length} characters: {shown}")


def _kid(value: object, where: str) -> None:
    if not isinstance(value, str) or not _KID.fullmatch(value):
        raise _Violation(f"{where} must be a key id (1-64 of A-Z a-z 0-9 . _ -), got {value!r}")


def _count(items: object, where: str, limit: int) -> None:
    if not isinstance(items, (list, tuple)):
        raise _Violation(f"{where} must be a list")
    if len(items) > limit:
        raise _Violation(f"{where} has {len(items)} entries, more than {limit}")


def _unique(ids: list[str], where: str) -> None:
    if len(set(ids)) == len(ids):
        return
    seen: set[str] = set()
    for pattern_id in ids:
        if pattern_id in seen:
            raise _Violation(f"{where}: pattern id {pattern_id!r} appears more than once")
        seen.add(pattern_id)


def _ids(items: list[str], where: str, limit: int) -> None:
    _count(items, where, limit)
    if ids_ok(items):
        return
    for i, item in enumerate(items):
        _text(item, f"{where}[{i}]", MAX_ID_LENGTH)


# -- pattern parts ------------------------------------------------------------------------


def _pattern_core(p: Pattern | ConsolidatedPattern, where: str) -> None:
    _text(p.id, f"{where}.id", MAX_ID_LENGTH)
    arity = CELLS_BY_TASK.get(p.task) if isinstance(p.task, str) else None
    if arity is None:
        raise _Violation(f"{where}.task is not a known task: {p.task!r}")
    cells = p.cells
    if not isinstance(cells, (tuple, list)) or len(cells) != arity:
        raise _Violation(f"{where}.cells: a {p.task} pattern names exactly {arity} cell(s)")
    for cell in cells:
        if not (_is_int(cell) and 0 <= cell < MAX_CELL):
            raise _Violation(f"{where}.cells: {cell!r} is not a cell in [0, {MAX_CELL})")
    context = p.context
    if not (
        isinstance(context, PatternContext)
        and isinstance(context.time_bucket, str)
        and context.time_bucket in TIME_BUCKETS
        and isinstance(context.day_type, str)
        and context.day_type in DAY_TYPES
    ):
        raise _Violation(f"{where}.context is not a valid context: {context!r}")
    rate = p.success_rate
    if not (_is_number(rate) and 0.0 <= rate <= 1.0):
        raise _Violation(f"{where}.success_rate must be in [0, 1], got {rate!r}")
    _int(p.support, f"{where}.support", 1, MAX_COUNT)


def _pattern(p: Pattern, where: str) -> None:
    if not isinstance(p, Pattern):
        raise _Violation(f"{where} must be a Pattern")
    _pattern_core(p, where)
    _int(p.version, f"{where}.version", 0, MAX_VERSION)


def _consolidated(p: ConsolidatedPattern, where: str) -> None:
    if not isinstance(p, ConsolidatedPattern):
        raise _Violation(f"{where} must be a ConsolidatedPattern")
    _pattern_core(p, where)
    _int(p.viewers, f"{where}.viewers", 1, MAX_COUNT)
    if not (_is_number(p.weight) and 0.0 <= p.weight < _INF):
        raise _Violation(f"{where}.weight must be finite and >= 0, got {p.weight!r}")
    _int(p.version, f"{where}.version", 0, MAX_VERSION)


def _trend(t: Trend, where: str) -> None:
    if not isinstance(t, Trend):
        raise _Violation(f"{where} must be a Trend")
    _int(t.cell, f"{where}.cell", 0, MAX_CELL - 1)
    _text(t.region, f"{where}.region", MAX_ID_LENGTH)
    if not (_is_number(t.score) and -_INF < t.score < _INF):
        raise _Violation(f"{where}.score must be finite, got {t.score!r}")
    _int(t.version, f"{where}.version", 0, MAX_VERSION)


def _content(c: ContentUpdate, where: str) -> None:
    if not isinstance(c, ContentUpdate):
        raise _Violation(f"{where} must be a ContentUpdate")
    _text(c.item_id, f"{where}.item_id", MAX_ID_LENGTH)
    _check_vector(c.embedding, f"{where}.embedding")


def _report(r: FrequencyReport, where: str) -> None:
    if not isinstance(r, FrequencyReport):
        raise _Violation(f"{where} must be a FrequencyReport")
    _int(r.seed, f"{where}.seed", 0, MAX_REPORT_SEED)
    _int(r.buckets, f"{where}.buckets", 2, MAX_REPORT_BUCKETS)
    _int(r.value, f"{where}.value", 0, r.buckets - 1)
    if not (_is_number(r.epsilon) and 0.0 < r.epsilon <= MAX_REPORT_EPSILON):
        raise _Violation(
            f"{where}.epsilon must be in (0, {MAX_REPORT_EPSILON:g}], got {r.epsilon!r}"
        )


def _shared(r: SharedReport, where: str) -> None:
    if not isinstance(r, SharedReport):
        raise _Violation(f"{where} must be a SharedReport")
    _int(r.size, f"{where}.size", 1, MAX_SHARED_CATALOG)
    for name in ("public", "leader", "helper"):
        part = getattr(r, name)
        if not isinstance(part, bytes) or not 0 < len(part) <= MAX_SHARE_PART:
            raise _Violation(f"{where}.{name} must be 1..{MAX_SHARE_PART} bytes")


def _item_score(s: ItemScore, where: str) -> None:
    if not isinstance(s, ItemScore):
        raise _Violation(f"{where} must be an ItemScore")
    _text(s.item_id, f"{where}.item_id", MAX_ID_LENGTH)
    if not (_is_number(s.score) and 0.0 <= s.score < _INF):
        raise _Violation(f"{where}.score must be finite and >= 0, got {s.score!r}")


# -- messages -----------------------------------------------------------------------------


def _registration(m: Registration, where: str) -> None:
    _text(m.device_model, f"{where}.device_model", MAX_SHORT_TEXT)
    _text(m.region, f"{where}.region", MAX_ID_LENGTH)
    _text(m.client_version, f"{where}.client_version", MAX_ID_LENGTH)
    if m.attestation is not None:
        _attestation(m.attestation, f"{where}.attestation")


def _attestation(a: Attestation, where: str) -> None:
    if not isinstance(a, Attestation):
        raise _Violation(f"{where} must be an Attestation")
    c = a.certificate
    for name in ("manufacturer_id", "key_id", "device_id"):
        _text(getattr(c, name), f"{where}.certificate.{name}", MAX_ID_LENGTH)
    _text(c.model, f"{where}.certificate.model", MAX_SHORT_TEXT)
    _int(c.not_before, f"{where}.certificate.not_before", 0, MAX_TIME)
    _int(c.not_after, f"{where}.certificate.not_after", c.not_before, MAX_TIME)
    _exact_bytes(c.device_key, f"{where}.certificate.device_key", ED25519_KEY_BYTES)
    _exact_bytes(c.signature, f"{where}.certificate.signature", ED25519_SIGNATURE_BYTES)
    if not (_is_number(a.signed_at) and 0.0 <= a.signed_at <= MAX_TIME):
        raise _Violation(
            f"{where}.signed_at must be a time in [0, {MAX_TIME}], got {a.signed_at!r}"
        )
    _exact_bytes(a.signature, f"{where}.signature", ED25519_SIGNATURE_BYTES)


def _exact_bytes(value: object, where: str, size: int) -> None:
    if not (isinstance(value, bytes) and len(value) == size):
        raise _Violation(f"{where} must be {size} bytes")


def _registration_response(m: RegistrationResponse, where: str) -> None:
    _text(m.viewer_id, f"{where}.viewer_id", MAX_ID_LENGTH)
    _text(m.access_token, f"{where}.access_token", MAX_TOKEN_LENGTH)
    _text(m.refresh_token, f"{where}.refresh_token", MAX_TOKEN_LENGTH)
    _int(m.expires_in, f"{where}.expires_in", 0, MAX_EXPIRES_IN)
    if not isinstance(m.release_keys, dict) or len(m.release_keys) > MAX_RELEASE_KEYS:
        raise _Violation(f"{where}.release_keys must map at most {MAX_RELEASE_KEYS} key ids")
    for kid, key in m.release_keys.items():
        _kid(kid, f"{where}.release_keys key")
        if not isinstance(key, bytes) or len(key) != RELEASE_KEY_BYTES:
            raise _Violation(
                f"{where}.release_keys[{kid!r}] must be {RELEASE_KEY_BYTES} raw Ed25519 bytes"
            )


def _token_refresh(m: TokenRefresh, where: str) -> None:
    _text(m.refresh_token, f"{where}.refresh_token", MAX_TOKEN_LENGTH)


def _push(m: PushRequest, where: str) -> None:
    _text(m.viewer_id, f"{where}.viewer_id", MAX_ID_LENGTH)
    _text(m.batch_id, f"{where}.batch_id", MAX_ID_LENGTH)
    _text(m.codebook_id, f"{where}.codebook_id", MAX_ID_LENGTH)
    _text(m.client_version, f"{where}.client_version", MAX_ID_LENGTH)
    _count(m.added, f"{where}.added", MAX_PATTERNS_PER_PUSH)
    _count(m.updated, f"{where}.updated", MAX_PATTERNS_PER_PUSH)
    if len(m.added) + len(m.updated) > MAX_PATTERNS_PER_PUSH:
        raise _Violation(f"{where} carries more than {MAX_PATTERNS_PER_PUSH} patterns")
    if not patterns_ok(m.added, Pattern):
        for i, p in enumerate(m.added):
            _pattern(p, f"{where}.added[{i}]")
    if not patterns_ok(m.updated, Pattern):
        for i, p in enumerate(m.updated):
            _pattern(p, f"{where}.updated[{i}]")
    _ids(m.removed, f"{where}.removed", MAX_REMOVED)
    _unique([*(p.id for p in m.added), *(p.id for p in m.updated), *m.removed], where)
    _count(m.reports, f"{where}.reports", MAX_REPORTS_PER_PUSH)
    for i, r in enumerate(m.reports):
        _report(r, f"{where}.reports[{i}]")
    _count(m.shares, f"{where}.shares", MAX_SHARES_PER_PUSH)
    for i, sr in enumerate(m.shares):
        _shared(sr, f"{where}.shares[{i}]")


def _ack(m: PushAck, where: str) -> None:
    _text(m.batch_id, f"{where}.batch_id", MAX_ID_LENGTH)
    _ids(m.accepted, f"{where}.accepted", MAX_ACK_IDS)
    _count(m.rejected, f"{where}.rejected", MAX_ACK_IDS)
    for i, r in enumerate(m.rejected):
        _text(r.pattern_id, f"{where}.rejected[{i}].pattern_id", MAX_ID_LENGTH)
        _text(r.reason, f"{where}.rejected[{i}].reason", MAX_SHORT_TEXT)
    _int(m.server_version, f"{where}.server_version", 0, MAX_VERSION)


def _pull(m: PullRequest, where: str) -> None:
    _text(m.viewer_id, f"{where}.viewer_id", MAX_ID_LENGTH)
    _int(m.since_version, f"{where}.since_version", 0, MAX_VERSION)
    _int(m.max_bytes, f"{where}.max_bytes", 1, MAX_PULL_BYTES)
    _text(m.region, f"{where}.region", MAX_ID_LENGTH)
    _count(m.interests, f"{where}.interests", MAX_INTERESTS)
    for i, cell in enumerate(m.interests):
        _int(cell, f"{where}.interests[{i}]", 0, MAX_CELL - 1)
    if m.cowatch is not None:
        _cowatch_cursor(m.cowatch, f"{where}.cowatch")


def _pull_response(m: PullResponse, where: str) -> None:
    _int(m.version, f"{where}.version", 0, MAX_VERSION)
    _count(m.patterns, f"{where}.patterns", MAX_PATTERNS_PER_PULL)
    if not patterns_ok(m.patterns, ConsolidatedPattern):
        for i, p in enumerate(m.patterns):
            _consolidated(p, f"{where}.patterns[{i}]")
    _ids(m.removed, f"{where}.removed", MAX_PATTERNS_PER_PULL)
    _unique([*(p.id for p in m.patterns), *m.removed], where)
    _count(m.trends, f"{where}.trends", MAX_TRENDS)
    if not trends_ok(m.trends):
        for i, t in enumerate(m.trends):
            _trend(t, f"{where}.trends[{i}]")
    _count(m.content, f"{where}.content", MAX_CONTENT_UPDATES)
    for i, c in enumerate(m.content):
        _content(c, f"{where}.content[{i}]")
    if not (_is_number(m.next_sync_after) and 0.0 <= m.next_sync_after <= MAX_SYNC_AFTER):
        raise _Violation(
            f"{where}.next_sync_after must be in [0, {MAX_SYNC_AFTER:.0f}] seconds, "
            f"got {m.next_sync_after!r}"
        )
    if not isinstance(m.more, bool):
        raise _Violation(f"{where}.more must be a bool")
    _count(m.popular, f"{where}.popular", MAX_POPULAR_PER_PULL)
    for i, s in enumerate(m.popular):
        _item_score(s, f"{where}.popular[{i}]")
    if m.cowatch is not None:
        _cowatch_cursor(m.cowatch.cursor, f"{where}.cowatch.cursor")
        _count(m.cowatch.rows, f"{where}.cowatch.rows", MAX_COWATCH_PER_PULL)
        for i, row in enumerate(m.cowatch.rows):
            _cowatch_row(row, f"{where}.cowatch.rows[{i}]")


def _cowatch_cursor(cursor: CowatchCursor, where: str) -> None:
    _int(cursor.version, f"{where}.version", 0, MAX_VERSION)
    _int(cursor.source, f"{where}.source", -1, MAX_POSITION)


def _cowatch_row(row: CowatchRow, where: str) -> None:
    _int(row.source, f"{where}.source", 0, MAX_POSITION)
    _count(row.neighbours, f"{where}.neighbours", MAX_COWATCH_NEIGHBOURS)
    for j, (neighbour, count) in enumerate(row.neighbours):
        _int(neighbour, f"{where}.neighbours[{j}][0]", 0, MAX_POSITION)
        _int(count, f"{where}.neighbours[{j}][1]", 1, MAX_POSITION)


def _sync(m: SyncRequest, where: str) -> None:
    if not isinstance(m.pull, PullRequest):
        raise _Violation(f"{where}.pull must be a PullRequest")
    _pull(m.pull, f"{where}.pull")
    if m.push is not None:
        if not isinstance(m.push, PushRequest):
            raise _Violation(f"{where}.push must be a PushRequest")
        _push(m.push, f"{where}.push")
        if m.push.viewer_id != m.pull.viewer_id:
            raise _Violation(f"{where}: push and pull name different viewers")
    if not isinstance(m.nonce, bytes) or len(m.nonce) > MAX_NONCE:
        raise _Violation(f"{where}.nonce must be at most {MAX_NONCE} bytes")
    _count(m.release_kids, f"{where}.release_kids", MAX_RELEASE_KEYS)
    for i, kid in enumerate(m.release_kids):
        _kid(kid, f"{where}.release_kids[{i}]")


def _sync_response(m: SyncResponse, where: str) -> None:
    if not isinstance(m.pull, PullResponse):
        raise _Violation(f"{where}.pull must be a PullResponse")
    _pull_response(m.pull, f"{where}.pull")
    if m.ack is not None:
        if not isinstance(m.ack, PushAck):
            raise _Violation(f"{where}.ack must be a PushAck")
        _ack(m.ack, f"{where}.ack")


def _event(m: ServerEvent, where: str) -> None:
    if m.kind not in ("release", "trend"):
        raise _Violation(f"{where}.kind must be 'release' or 'trend', got {m.kind!r}")
    _int(m.version, f"{where}.version", 0, MAX_VERSION)
    if not isinstance(m.data, dict) or len(m.data) > MAX_EVENT_FIELDS:
        raise _Violation(f"{where}.data must be a mapping of at most {MAX_EVENT_FIELDS} fields")
    for key, value in m.data.items():
        _text(key, f"{where}.data key", MAX_ID_LENGTH)
        if isinstance(value, str):
            _text(value, f"{where}.data[{key!r}]", MAX_SHORT_TEXT, empty=True)
        elif _is_int(value):
            _int(value, f"{where}.data[{key!r}]", -(2**63), 2**64 - 1)
        elif not (_is_number(value) and -_INF < value < _INF):
            raise _Violation(f"{where}.data[{key!r}] must be a finite number or a string")


def _problem(m: ProblemDetail, where: str) -> None:
    _text(m.title, f"{where}.title", MAX_SHORT_TEXT)
    _int(m.status, f"{where}.status", 100, 599)
    _text(m.detail, f"{where}.detail", MAX_DETAIL_LENGTH, empty=True)
    _text(m.type, f"{where}.type", MAX_SHORT_TEXT * 4)


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
