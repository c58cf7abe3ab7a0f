"""msgpack bodies of the records both backends store.

Both backends store each pattern twice: its structured fields as columns (so SQL can
filter on codebook, task, cells and context) and the whole Struct as msgpack bytes (so
reading it back is one decode, and fields added later survive a round trip).
"""

from __future__ import annotations

import msgspec

from omega.errors import InputError
from omega.protocol.messages import ConsolidatedPattern, Pattern, PushAck, SharedReport
from omega.storage.base import Codebook, ReportQueue

__all__ = [
    "check_codebook",
    "decode_ack",
    "decode_consolidated",
    "decode_pattern",
    "decode_share",
    "encode",
    "encode_share",
    "pattern_columns",
    "queue_table",
]

_encoder = msgspec.msgpack.Encoder()
_pattern_decoder = msgspec.msgpack.Decoder(Pattern)
_consolidated_decoder = msgspec.msgpack.Decoder(ConsolidatedPattern)
_ack_decoder = msgspec.msgpack.Decoder(PushAck)
_share_decoder = msgspec.msgpack.Decoder(SharedReport)
_QUEUES: dict[str, str] = {"reports": "pending_reports", "shares": "pending_shares"}


def encode_share(report: SharedReport) -> bytes:
    return _encoder.encode(report)


def decode_share(data: bytes) -> SharedReport:
    return _share_decoder.decode(data)


def queue_table(queue: ReportQueue) -> str:
    """The table a report queue lives in (a fixed name: safe to put in SQL)."""
    try:
        return _QUEUES[queue]
    except KeyError:
        raise InputError(f"unknown report queue {queue!r}") from None


def encode(obj: Pattern | ConsolidatedPattern | PushAck) -> bytes:
    return _encoder.encode(obj)


def decode_pattern(data: bytes) -> Pattern:
    return _pattern_decoder.decode(data)


def decode_consolidated(data: bytes) -> ConsolidatedPattern:
    return _consolidated_decoder.decode(data)


def decode_ack(data: bytes) -> PushAck:
    return _ack_decoder.decode(data)


def pattern_columns(
    p: Pattern | ConsolidatedPattern,
) -> tuple[str, tuple[int, ...], str, str, float, int]:
    """The structured fields both backends keep as columns: task, cells, context, quality."""
    return (
        p.task,
        p.cells,
        p.context.time_bucket,
        p.context.day_type,
        p.success_rate,
        p.support,
    )


def check_codebook(codebook: Codebook) -> None:
    if codebook.k < 1 or codebook.dim < 1:
        raise InputError(f"codebook {codebook.codebook_id!r} needs k ≥ 1 and dim ≥ 1")
    expected = codebook.k * codebook.dim * 2
    if len(codebook.centroids_f16) != expected:
        raise InputError(
            f"codebook {codebook.codebook_id!r}: {len(codebook.centroids_f16)} bytes of "
            f"centroids, expected k * dim * 2 = {expected}"
        )
