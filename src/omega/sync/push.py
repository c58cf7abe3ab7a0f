"""What a sync pushes: the next batch from the brain's outbox, decided without any I/O.

A batch takes the oldest unsent outbox entries, at most ``max_patterns`` of them and
about ``max_bytes`` encoded (always at least one), and carries each pattern's *current*
shareable state. An ``upsert`` whose pattern is gone from the bank (pruned since it was
queued) travels as a removal: the server must not keep what the device no longer has.

The encoded frame is what :meth:`omega.brain.SyncState.begin_batch` records before
sending, so a retry resends the very same bytes under the same batch id and the server
applies it once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from omega.brain import OutboxEntry
from omega.protocol import codec
from omega.protocol.messages import FrequencyReport, PushRequest, SharedReport

__all__ = ["MAX_PUSH_BYTES", "MAX_PUSH_PATTERNS", "PushPlan", "build_push", "new_batch_id"]

MAX_PUSH_PATTERNS = 64
MAX_PUSH_BYTES = 1024


@dataclass(frozen=True, slots=True)
class PushPlan:
    request: PushRequest
    payload: bytes  # codec.encode(request): recorded, then sent, byte for byte
    entries: tuple[OutboxEntry, ...]  # the outbox entries this batch acknowledges

    @property
    def pattern_ids(self) -> tuple[str, ...]:
        return tuple(e.pattern_id for e in self.entries)

    @property
    def size(self) -> int:
        return len(self.request.added) + len(self.request.updated) + len(self.request.removed)


def new_batch_id() -> str:
    return uuid.uuid4().hex


def build_push(
    entries: Sequence[OutboxEntry],
    *,
    viewer_id: str,
    codebook_id: str,
    batch_id: str,
    client_version: str = "0.1.0",
    max_patterns: int = MAX_PUSH_PATTERNS,
    max_bytes: int = MAX_PUSH_BYTES,
    reports: Sequence[FrequencyReport] = (),
    shares: Sequence[SharedReport] = (),
) -> PushPlan | None:
    """The next batch from the oldest outbox ``entries`` (``brain.sync.pending``), or None
    when none waits and there is no report.

    ``reports`` and ``shares`` (popularity reports, see ``omega.sync.reports``) always
    travel whole."""
    if not entries and not reports and not shares:
        return None
    entries = entries[:max_patterns]
    items = [(e.pattern_id, e.pattern) for e in entries]

    def request(count: int) -> PushRequest:
        chosen = items[:count]
        return PushRequest(
            viewer_id=viewer_id,
            batch_id=batch_id,
            codebook_id=codebook_id,
            added=[p for _, p in chosen if p is not None and p.version <= 1],
            updated=[p for _, p in chosen if p is not None and p.version > 1],
            removed=[pid for pid, p in chosen if p is None],
            client_version=client_version,
            reports=list(reports),
            shares=list(shares),
        )

    # The largest prefix within the byte budget (binary search: encoding is monotone).
    lo, hi = min(1, len(items)), len(items)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(codec.encode(request(mid))) <= max_bytes:
            lo = mid
        else:
            hi = mid - 1
    chosen = request(lo)
    return PushPlan(
        request=chosen,
        payload=codec.encode(chosen),
        entries=tuple(entries[:lo]),
    )
