"""Checks of the parts protocol messages carry (patterns, trends, content updates,
frequency reports and shares, item scores, co-watch cursors and rows, attestations),
for the message checks of ``omega.protocol.validation``. Each raises
:class:`~omega.protocol._field_checks.Violation` naming the offending field.
"""

from __future__ import annotations

from omega.protocol._field_checks import (
    INF,
    Violation,
    check_bytes,
    check_count,
    check_int,
    check_text,
    check_vector,
    is_int,
    is_number,
)
from omega.protocol._limits import (
    CELLS_BY_TASK,
    DAY_TYPES,
    ED25519_KEY_BYTES,
    ED25519_SIGNATURE_BYTES,
    MAX_CELL,
    MAX_COUNT,
    MAX_COWATCH_NEIGHBOURS,
    MAX_ID_LENGTH,
    MAX_POSITION,
    MAX_REPORT_BUCKETS,
    MAX_REPORT_EPSILON,
    MAX_REPORT_SEED,
    MAX_SHARE_PART,
    MAX_SHARED_CATALOG,
    MAX_SHORT_TEXT,
    MAX_TIME,
    MAX_VERSION,
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
    Pattern,
    PatternContext,
    SharedReport,
    Trend,
)

__all__ = [
    "check_attestation",
    "check_consolidated",
    "check_content",
    "check_cowatch_cursor",
    "check_cowatch_row",
    "check_item_score",
    "check_pattern",
    "check_report",
    "check_shared",
    "check_trend",
]


def _pattern_core(p: Pattern | ConsolidatedPattern, where: str) -> None:
    check_text(p.id, f"{where}.id", MAX_ID_LENGTH)
    arity = CELLS_BY_TASK.get(p.task) if isinstance(p.task, str) else None
    if arity is None:
        raise Violation(f"{where}.task is not a known task: {p.task!r}")
    cells = p.cells
    if not isinstance(cells, (tuple, list)) or len(cells) != arity:
        raise Violation(f"{where}.cells: a {p.task} pattern names exactly {arity} cell(s)")
    for cell in cells:
        if not (is_int(cell) and 0 <= cell < MAX_CELL):
            raise Violation(f"{where}.cells: {cell!r} is not a cell in [0, {MAX_CELL})")
    context = p.context
    if not (
        isinstance(context, PatternContext)
        and isinstance(context.time_bucket, str)
        and context.time_bucket in TIME_BUCKETS
        and isinstance(context.day_type, str)
        and context.day_type in DAY_TYPES
    ):
        raise Violation(f"{where}.context is not a valid context: {context!r}")
    rate = p.success_rate
    if not (is_number(rate) and 0.0 <= rate <= 1.0):
        raise Violation(f"{where}.success_rate must be in [0, 1], got {rate!r}")
    check_int(p.support, f"{where}.support", 1, MAX_COUNT)


def check_pattern(p: Pattern, where: str) -> None:
    if not isinstance(p, Pattern):
        raise Violation(f"{where} must be a Pattern")
    _pattern_core(p, where)
    check_int(p.version, f"{where}.version", 0, MAX_VERSION)


def check_consolidated(p: ConsolidatedPattern, where: str) -> None:
    if not isinstance(p, ConsolidatedPattern):
        raise Violation(f"{where} must be a ConsolidatedPattern")
    _pattern_core(p, where)
    check_int(p.viewers, f"{where}.viewers", 1, MAX_COUNT)
    if not (is_number(p.weight) and 0.0 <= p.weight < INF):
        raise Violation(f"{where}.weight must be finite and >= 0, got {p.weight!r}")
    check_int(p.version, f"{where}.version", 0, MAX_VERSION)


def check_trend(t: Trend, where: str) -> None:
    if not isinstance(t, Trend):
        raise Violation(f"{where} must be a Trend")
    check_int(t.cell, f"{where}.cell", 0, MAX_CELL - 1)
    check_text(t.region, f"{where}.region", MAX_ID_LENGTH)
    if not (is_number(t.score) and -INF < t.score < INF):
        raise Violation(f"{where}.score must be finite, got {t.score!r}")
    check_int(t.version, f"{where}.version", 0, MAX_VERSION)


def check_content(c: ContentUpdate, where: str) -> None:
    if not isinstance(c, ContentUpdate):
        raise Violation(f"{where} must be a ContentUpdate")
    check_text(c.item_id, f"{where}.item_id", MAX_ID_LENGTH)
    check_vector(c.embedding, f"{where}.embedding")


def check_report(r: FrequencyReport, where: str) -> None:
    if not isinstance(r, FrequencyReport):
        raise Violation(f"{where} must be a FrequencyReport")
    check_int(r.seed, f"{where}.seed", 0, MAX_REPORT_SEED)
    check_int(r.buckets, f"{where}.buckets", 2, MAX_REPORT_BUCKETS)
    check_int(r.value, f"{where}.value", 0, r.buckets - 1)
    if not (is_number(r.epsilon) and 0.0 < r.epsilon <= MAX_REPORT_EPSILON):
        raise Violation(
            f"{where}.epsilon must be in (0, {MAX_REPORT_EPSILON:g}], got {r.epsilon!r}"
        )


def check_shared(r: SharedReport, where: str) -> None:
    if not isinstance(r, SharedReport):
        raise Violation(f"{where} must be a SharedReport")
    check_int(r.size, f"{where}.size", 1, MAX_SHARED_CATALOG)
    for name in ("public", "leader", "helper"):
        part = getattr(r, name)
        if not isinstance(part, bytes) or not 0 < len(part) <= MAX_SHARE_PART:
            raise Violation(f"{where}.{name} must be 1..{MAX_SHARE_PART} bytes")


def check_item_score(s: ItemScore, where: str) -> None:
    if not isinstance(s, ItemScore):
        raise Violation(f"{where} must be an ItemScore")
    check_text(s.item_id, f"{where}.item_id", MAX_ID_LENGTH)
    if not (is_number(s.score) and 0.0 <= s.score < INF):
        raise Violation(f"{where}.score must be finite and >= 0, got {s.score!r}")


def check_cowatch_cursor(cursor: CowatchCursor, where: str) -> None:
    check_int(cursor.version, f"{where}.version", 0, MAX_VERSION)
    check_int(cursor.source, f"{where}.source", -1, MAX_POSITION)


def check_cowatch_row(row: CowatchRow, where: str) -> None:
    check_int(row.source, f"{where}.source", 0, MAX_POSITION)
    check_count(row.neighbours, f"{where}.neighbours", MAX_COWATCH_NEIGHBOURS)
    for j, (neighbour, count) in enumerate(row.neighbours):
        check_int(neighbour, f"{where}.neighbours[{j}][0]", 0, MAX_POSITION)
        check_int(count, f"{where}.neighbours[{j}][1]", 1, MAX_POSITION)


def check_attestation(a: Attestation, where: str) -> None:
    if not isinstance(a, Attestation):
        raise Violation(f"{where} must be an Attestation")
    c = a.certificate
    for name in ("manufacturer_id", "key_id", "device_id"):
        check_text(getattr(c, name), f"{where}.certificate.{name}", MAX_ID_LENGTH)
    check_text(c.model, f"{where}.certificate.model", MAX_SHORT_TEXT)
    check_int(c.not_before, f"{where}.certificate.not_before", 0, MAX_TIME)
    check_int(c.not_after, f"{where}.certificate.not_after", c.not_before, MAX_TIME)
    check_bytes(c.device_key, f"{where}.certificate.device_key", ED25519_KEY_BYTES)
    check_bytes(c.signature, f"{where}.certificate.signature", ED25519_SIGNATURE_BYTES)
    if not (is_number(a.signed_at) and 0.0 <= a.signed_at <= MAX_TIME):
        raise Violation(f"{where}.signed_at must be a time in [0, {MAX_TIME}], got {a.signed_at!r}")
    check_bytes(a.signature, f"{where}.signature", ED25519_SIGNATURE_BYTES)
