"""What the server accepts from a push: pure decisions, plus the codebook they need.

A push is checked as a whole first (size, owner) by the routes; here each pattern is
checked against the server's codebook, and rejected patterns get a reason the device can
show or log. The digest that makes ingestion idempotent is the SHA-256 of the push's
canonical msgpack body, so the same push sent as JSON or binary has one digest. The
decisions (``review_push``, the digests) do no I/O; ``CodebookCache`` is the one part
that reads storage (the current codebook, re-read at most every few seconds).
"""

from __future__ import annotations

import hashlib
import threading

from omega.clock import Clock
from omega.protocol import CELLS_BY_TASK, codec
from omega.protocol.messages import Pattern, PushAck, PushRequest, Rejection
from omega.storage.base import Codebook, Storage

__all__ = ["CodebookCache", "framed_push_digest", "push_digest", "review_push"]


def push_digest(push: PushRequest) -> str:
    return hashlib.sha256(codec.canonical(push)).hexdigest()


def framed_push_digest(push: PushRequest) -> str:
    """The digest servers stored until 2026-12: of the whole frame, validated and
    compressed again (35 µs a push against 7). A retry of a batch stored then must still
    be recognised (see ``Exchange``)."""
    return hashlib.sha256(codec.encode(push)).hexdigest()


def _named(codebook_id: str) -> str:
    """A codebook id for a rejection's reason, which holds at most 256 characters: ids
    may be 128 each, so a reason naming two in full could not be sent."""
    return repr(codebook_id if len(codebook_id) <= 48 else codebook_id[:47] + "…")


def _reason(pattern: Pattern, codebook: Codebook) -> str | None:
    arity = CELLS_BY_TASK.get(pattern.task)
    if arity is not None and len(pattern.cells) != arity:
        return f"a {pattern.task} pattern names {arity} cell(s), got {len(pattern.cells)}"
    for cell in pattern.cells:
        if not 0 <= cell < codebook.k:
            named = _named(codebook.codebook_id)
            return f"cell {cell} is outside codebook {named} (k={codebook.k})"
    if not 0.0 <= pattern.success_rate <= 1.0:
        return "success_rate must lie in [0, 1]"
    if pattern.support < 1:
        return "support must be at least 1"
    return None


def review_push(push: PushRequest, codebook: Codebook | None, *, server_version: int) -> PushAck:
    """Accept or reject each pattern of ``push``; removals are always accepted.

    A push made against another codebook than the server's current one names cells that
    mean something else now: all its patterns are rejected, with a reason saying so.
    """
    accepted: list[str] = []
    rejected: list[Rejection] = []
    patterns = [*push.added, *push.updated]
    if codebook is None:
        wrong = "the server has no codebook yet; patterns cannot be placed"
    elif push.codebook_id != codebook.codebook_id:
        wrong = (
            f"codebook {_named(push.codebook_id)} is not the server's current codebook "
            f"{_named(codebook.codebook_id)}; fetch the new codebook and re-learn"
        )
    else:
        wrong = None
    for pattern in patterns:
        reason = wrong if wrong is not None or codebook is None else _reason(pattern, codebook)
        if reason is None:
            accepted.append(pattern.id)
        else:
            rejected.append(Rejection(pattern_id=pattern.id, reason=reason))
    accepted.extend(push.removed)
    return PushAck(
        batch_id=push.batch_id, accepted=accepted, rejected=rejected, server_version=server_version
    )


class CodebookCache:
    """The current codebook, re-read at most every ``ttl`` seconds (it changes rarely and
    can be large, and every push needs it). A publish through this process refreshes it
    at once; one through another process is seen within ``ttl``."""

    def __init__(self, storage: Storage, *, clock: Clock, ttl: float = 5.0) -> None:
        self._storage = storage
        self._clock = clock
        self._ttl = ttl
        self._lock = threading.Lock()
        self._value: Codebook | None = None
        self._read_at = float("-inf")

    def fresh(self) -> tuple[bool, Codebook | None]:
        """(True, the codebook) when it was read less than ``ttl`` ago, else (False, None):
        a lookup that never touches storage, for an event loop."""
        with self._lock:
            if self._clock.now() - self._read_at < self._ttl:
                return True, self._value
        return False, None

    def get(self) -> Codebook | None:
        """Blocking (may read storage): call from a worker thread."""
        known, value = self.fresh()
        if known:
            return value
        value = self._storage.get_codebook()
        with self._lock:
            self._value, self._read_at = value, self._clock.now()
        return value

    def put(self, codebook: Codebook) -> Codebook:
        """Blocking: store ``codebook`` and make it current here; as stored (with the
        sequence the store gave it)."""
        self._storage.put_codebook(codebook)
        stored = self._storage.get_codebook()
        assert stored is not None  # just stored
        with self._lock:
            self._value, self._read_at = stored, self._clock.now()
        return stored
