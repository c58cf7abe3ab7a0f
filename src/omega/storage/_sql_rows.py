"""Row shapes both backends share: the live and released sets' columns and upserts, and
the structured columns a pattern is stored with (beside its msgpack body)."""

from __future__ import annotations

from omega.protocol.messages import ConsolidatedPattern, Pattern
from omega.storage._codec import pattern_columns
from omega.storage._sql import Dialect

__all__ = [
    "FOLDED",
    "LIVE_COLUMNS",
    "NEWER_WINS",
    "UPSERT_RELEASED",
    "columns",
    "pending_columns",
]

#: The live set's columns, in the order the statements below write them.
LIVE_COLUMNS = """viewer_id, pattern_id, region, codebook_id, removed, task, cells,
    time_bucket, day_type, success_rate, support, body, seq, updated_at"""

#: A pending row as live columns (all but ``updated_at``, the time of the fold).
FOLDED = """viewer_id, pattern_id, region, codebook_id, op = 'remove', task, cells,
    time_bucket, day_type, success_rate, support, body, seq"""

#: Into the live set: the newest contribution per (viewer, pattern id) by seq wins,
#: whatever the order rows arrive in.
NEWER_WINS = """
ON CONFLICT (viewer_id, pattern_id) DO UPDATE SET
    region = excluded.region, codebook_id = excluded.codebook_id,
    removed = excluded.removed, task = excluded.task, cells = excluded.cells,
    time_bucket = excluded.time_bucket, day_type = excluded.day_type,
    success_rate = excluded.success_rate, support = excluded.support,
    body = excluded.body, seq = excluded.seq, updated_at = excluded.updated_at
WHERE excluded.seq > live.seq
"""

UPSERT_RELEASED = """
INSERT INTO released (pattern_id, version, removed, weight, task, cells, time_bucket,
                      day_type, success_rate, support, viewers, body)
VALUES (?, ?, FALSE, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (pattern_id) DO UPDATE SET
    version = excluded.version, removed = FALSE, weight = excluded.weight,
    task = excluded.task, cells = excluded.cells, time_bucket = excluded.time_bucket,
    day_type = excluded.day_type, success_rate = excluded.success_rate,
    support = excluded.support, viewers = excluded.viewers, body = excluded.body
"""


def columns(p: Pattern | ConsolidatedPattern, dialect: Dialect) -> tuple[object, ...]:
    task, cells, time_bucket, day_type, success_rate, support = pattern_columns(p)
    return (task, dialect.array(cells), time_bucket, day_type, success_rate, support)


def pending_columns(p: Pattern | None, dialect: Dialect) -> tuple[object, ...]:
    return (None,) * 6 if p is None else columns(p, dialect)
