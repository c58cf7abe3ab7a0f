"""The PostgreSQL backend's row shapes: the fold of pending contributions into the live
set, the upsert into the released set, and a pattern's structured columns."""

from __future__ import annotations

from omega.protocol.messages import ConsolidatedPattern, Pattern
from omega.storage._codec import pattern_columns

__all__ = ["APPLY", "UPSERT_RELEASED", "columns", "pending_columns"]

UPSERT_RELEASED = """
INSERT INTO released (pattern_id, version, removed, weight, task, cells, time_bucket,
                      day_type, success_rate, support, viewers, body)
VALUES (%s, %s, FALSE, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (pattern_id) DO UPDATE SET
    version = EXCLUDED.version, removed = FALSE, weight = EXCLUDED.weight,
    task = EXCLUDED.task, cells = EXCLUDED.cells, time_bucket = EXCLUDED.time_bucket,
    day_type = EXCLUDED.day_type, success_rate = EXCLUDED.success_rate,
    support = EXCLUDED.support, viewers = EXCLUDED.viewers, body = EXCLUDED.body
"""

# Lease (SKIP LOCKED: rows another worker holds are invisible), delete, keep the newest
# contribution per (viewer, pattern), fold it into the live set last-writer-wins on seq,
# all in one statement. Rows are inserted in key order so that concurrent workers lock
# live rows in the same order.
APPLY = """
WITH lease AS (
    SELECT seq FROM pending ORDER BY seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), leased AS (
    DELETE FROM pending p USING lease WHERE p.seq = lease.seq RETURNING p.*
), latest AS (
    SELECT DISTINCT ON (viewer_id, pattern_id) * FROM leased
    ORDER BY viewer_id, pattern_id, seq DESC
), folded AS (
    INSERT INTO live (viewer_id, pattern_id, region, codebook_id, removed, task, cells,
                      time_bucket, day_type, success_rate, support, body, seq, updated_at)
    SELECT viewer_id, pattern_id, region, codebook_id, op = 'remove', task, cells,
           time_bucket, day_type, success_rate, support, body, seq, %(now)s
    FROM latest ORDER BY viewer_id, pattern_id
    ON CONFLICT (viewer_id, pattern_id) DO UPDATE SET
        region = EXCLUDED.region, codebook_id = EXCLUDED.codebook_id,
        removed = EXCLUDED.removed, task = EXCLUDED.task, cells = EXCLUDED.cells,
        time_bucket = EXCLUDED.time_bucket, day_type = EXCLUDED.day_type,
        success_rate = EXCLUDED.success_rate, support = EXCLUDED.support,
        body = EXCLUDED.body, seq = EXCLUDED.seq, updated_at = EXCLUDED.updated_at
    WHERE live.seq < EXCLUDED.seq
)
SELECT count(*) FROM leased
"""


def columns(p: Pattern | ConsolidatedPattern) -> tuple[object, ...]:
    task, cells, time_bucket, day_type, success_rate, support = pattern_columns(p)
    return (task, list(cells), time_bucket, day_type, success_rate, support)


def pending_columns(p: Pattern | None) -> tuple[object, ...]:
    return (None,) * 6 if p is None else columns(p)
