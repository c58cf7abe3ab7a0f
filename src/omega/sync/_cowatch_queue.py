"""The co-watch pairs a TV paid for that the helper has not confirmed (``docs/cowatch.md``).

A contribution records its epoch, its budget and its pairs — blinded, ready to send — in
one durable commit before anything is sent. Each pair leaves the queue when the helper
answers for its report: queued now, or already held from this device (an earlier try
reached it; the helper keeps one report per device and tag, ever), or refused for good
(malformed). A piece that fails (a server down, refusing, over its bound) or a crash
leaves the rest queued, and the next sync sends them first, charged nothing more to the
budget. What is kept for each pair lets a re-send cost no more than it must:

- its **blinding** (scalar and point): the same point again is answered free by both
  servers within the epoch they first charged it in (a new epoch charges it once more);
- its **OPRF output**, once both servers evaluated it: no OPRF request is needed again;
- its **sealed report** and the key it was sealed to: the same bytes go again, so even a
  report both tries delivered is one point to the constellation; a report sealed to a key
  the constellation no longer announces is made and sealed again from the output.

The queue names pairs by their positions in the server's catalog order; it is dropped
when that order changes (the positions would name other titles).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging

import msgspec

from omega.brain import Brain
from omega.brain.sync_state import CATALOG_ORDER_CURSOR
from omega.protocol import oprf
from omega.protocol.cowatch import SealedReport, pair_input

__all__ = ["COWATCH_QUEUE", "MAX_QUEUED", "Queued", "load_queue", "queue_cursor"]

_log = logging.getLogger("omega.sync.cowatch")

COWATCH_QUEUE = "cowatch_queue"
#: The most pairs kept: one epoch at the helper's largest bound (``CowatchConfig``), since
#: a TV asks for new pairs only for the slots its queue leaves free in an epoch.
MAX_QUEUED = 1_000


class Queued(msgspec.Struct, array_like=True, frozen=True):
    """A pair paid for and not yet confirmed by the helper, with what its sending reached."""

    a: int
    b: int
    scalar: bytes
    point: bytes
    #: The OPRF output (b"" until both servers evaluated the point).
    output: bytes = b""
    #: The sealed report (None until made from the output).
    report: SealedReport | None = None

    @classmethod
    def blind(cls, a: int, b: int) -> Queued:
        blinded = oprf.blind(pair_input(a, b))
        return cls(a, b, blinded.scalar, blinded.point)

    def blinded(self) -> oprf.Blinded:
        return oprf.Blinded(pair_input(self.a, self.b), self.point, self.scalar)


class _Stored(msgspec.Struct, frozen=True):
    order: str
    leader: bytes
    items: list[Queued]


def _order(brain: Brain) -> str:
    """A digest of the catalog order the queue's positions are in."""
    return hashlib.sha256(brain.sync.cursor(CATALOG_ORDER_CURSOR).encode()).hexdigest()[:32]


def queue_cursor(brain: Brain, items: list[Queued], leader: bytes) -> str:
    """The cursor value holding ``items`` (their reports sealed to ``leader``)."""
    if not items:
        return ""
    if len(items) > MAX_QUEUED:  # a server bound over the helper's largest: not sent anyway
        _log.warning(
            "%d co-watch pairs over the queue's bound are dropped", len(items) - MAX_QUEUED
        )
    stored = _Stored(order=_order(brain), leader=leader, items=items[:MAX_QUEUED])
    return base64.b64encode(msgspec.msgpack.encode(stored)).decode()


def load_queue(brain: Brain) -> tuple[list[Queued], bytes]:
    """The queued pairs and the key their reports are sealed to; none when the queue is
    empty, unreadable, or in a catalog order that no longer holds (both logged)."""
    stored = brain.sync.cursor(COWATCH_QUEUE)
    if not stored:
        return [], b""
    try:
        found = msgspec.msgpack.decode(base64.b64decode(stored, validate=True), type=_Stored)
    except (binascii.Error, msgspec.DecodeError) as exc:
        _log.warning("the co-watch queue cannot be read (%s): its pairs are dropped", exc)
        return [], b""
    if found.order != _order(brain):
        _log.warning(
            "the catalog order changed: %d queued co-watch pairs are dropped", len(found.items)
        )
        return [], b""
    return found.items, found.leader
