"""The SQLite backend's own statements into the live file (see ``_sqlite_live``)."""

from __future__ import annotations

from omega.storage._codec import decode_pattern
from omega.storage._pending import Leased
from omega.storage._sql import SQLITE
from omega.storage._sql_rows import FOLDED, LIVE_COLUMNS, NEWER_WINS, columns

__all__ = ["FOLD_PENDING", "UPSERT_LIVE", "live_values"]

# The live file's ``main`` schema (the main file is attached as ``q``).
_INTO_LIVE = f"INSERT INTO main.live ({LIVE_COLUMNS})\n"
UPSERT_LIVE = _INTO_LIVE + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" + NEWER_WINS
#: A batch of the main file's pending rows (parameters: now, the seq after which the batch
#: starts, its last seq) in one statement on the live file's connection (the main file
#: attached as ``q``), from their structured columns; rows queued before those existed are
#: folded by UPSERT_LIVE.
FOLD_PENDING = (
    _INTO_LIVE
    + f"""SELECT {FOLDED}, ?
FROM q.pending WHERE seq > ? AND seq <= ? AND (op = 'remove' OR task IS NOT NULL) ORDER BY seq"""
    + NEWER_WINS
)


def live_values(row: Leased, now: float) -> tuple[object, ...]:
    head = (row.viewer_id, row.pattern_id, row.region, row.codebook_id)
    if row.op == "remove" or row.body is None:
        return (*head, 1, None, None, None, None, None, None, None, row.seq, now)
    fields = columns(decode_pattern(row.body), SQLITE)
    return (*head, 0, *fields, row.body, row.seq, now)
