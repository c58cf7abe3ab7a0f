"""The SQLite backend's row shapes: statements into the live and released sets, and the
structured columns a pattern is stored with (beside its msgpack body)."""

from __future__ import annotations

import msgspec

from omega.protocol.messages import ConsolidatedPattern, Pattern
from omega.storage._codec import decode_pattern, pattern_columns
from omega.storage._pending import Leased

__all__ = [
    "FOLD_PENDING",
    "NEWER_WINS",
    "UPSERT_LIVE",
    "UPSERT_RELEASED",
    "columns",
    "live_values",
    "pending_columns",
]

# Into the live set (the live file's ``main`` schema), newest contribution per (viewer,
# pattern id) by seq, whatever the order rows arrive in.
_INTO_LIVE = """
INSERT INTO main.live (viewer_id, pattern_id, region, codebook_id, removed, task, cells,
                  time_bucket, day_type, success_rate, support, body, seq, updated_at)
"""
NEWER_WINS = """
ON CONFLICT (viewer_id, pattern_id) DO UPDATE SET
    region = excluded.region, codebook_id = excluded.codebook_id,
    removed = excluded.removed, task = excluded.task, cells = excluded.cells,
    time_bucket = excluded.time_bucket, day_type = excluded.day_type,
    success_rate = excluded.success_rate, support = excluded.support,
    body = excluded.body, seq = excluded.seq, updated_at = excluded.updated_at
WHERE excluded.seq > live.seq
"""
UPSERT_LIVE = _INTO_LIVE + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" + NEWER_WINS
#: A batch of the main file's pending rows (parameters: now, the seq after which the batch
#: starts, its last seq) in one statement on the live file's connection (the main file
#: attached as ``q``), from their structured columns; rows queued before those existed are
#: folded by UPSERT_LIVE.
FOLD_PENDING = (
    _INTO_LIVE
    + """SELECT viewer_id, pattern_id, region, codebook_id, op = 'remove', task, cells,
       time_bucket, day_type, success_rate, support, body, seq, ?
FROM q.pending WHERE seq > ? AND seq <= ? AND (op = 'remove' OR task IS NOT NULL) ORDER BY seq"""
    + NEWER_WINS
)

UPSERT_RELEASED = """
INSERT INTO released (pattern_id, version, removed, weight, task, cells, time_bucket,
                      day_type, success_rate, support, viewers, body)
VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (pattern_id) DO UPDATE SET
    version = excluded.version, removed = 0, weight = excluded.weight,
    task = excluded.task, cells = excluded.cells, time_bucket = excluded.time_bucket,
    day_type = excluded.day_type, success_rate = excluded.success_rate,
    support = excluded.support, viewers = excluded.viewers, body = excluded.body
"""


_json = msgspec.json.Encoder()


def columns(p: Pattern | ConsolidatedPattern) -> tuple[object, ...]:
    task, cells, time_bucket, day_type, success_rate, support = pattern_columns(p)
    return (task, _json.encode(cells).decode(), time_bucket, day_type, success_rate, support)


def live_values(row: Leased, now: float) -> tuple[object, ...]:
    head = (row.viewer_id, row.pattern_id, row.region, row.codebook_id)
    if row.op == "remove" or row.body is None:
        return (*head, 1, None, None, None, None, None, None, None, row.seq, now)
    fields = columns(decode_pattern(row.body))
    return (*head, 0, *fields, row.body, row.seq, now)


def pending_columns(p: Pattern | None) -> tuple[object, ...]:
    return (None,) * 6 if p is None else columns(p)
