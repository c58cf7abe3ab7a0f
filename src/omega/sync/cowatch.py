"""The device's side of private co-watch knowledge (``docs/cowatch.md``).

Two seams to whatever keeps the TV's viewing (the brain provides both; without them
the defaults do nothing, and the device neither contributes nor asks for rows):

- :class:`CowatchPairs` — ``pairs_to_contribute(epoch, limit)``: at most ``limit`` co-watch
  pairs (a → b, catalog positions in the codebook's order) the TV contributes this epoch,
  best first; ``limit`` is what the sync can send now (the server's per-epoch bound and
  the privacy budget left), so pairs the budget cannot pay for are never asked for and
  stay for a later epoch; the sync asks once per epoch;
- :class:`CowatchTable` — ``apply_cowatch(version, rows)``: released rows (source
  position → [(neighbour position, quantised count of TVs)], best first; an empty list
  withdraws the source's row), page by page as pulls bring them.

:class:`Contributor` is the contribution itself: OPRF through the helper (attested by
the device's certificate) then the constellation (as the registered viewer), reports
sealed to the constellation and sent through the helper. Each pair costs ``epsilon``
(by default the brain's ``cowatch_epsilon``, 0.25: an epoch's 128 pairs cost ε 32 of the
yearly 160) from the privacy budget the popularity reports already keep
(``omega.sync.reports``), once: the pairs are queued when they are paid for, and what a
failed piece or a crash left unconfirmed goes first at the next sync
(``omega.sync._cowatch_queue``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import msgspec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from omega.brain import Brain
from omega.errors import ConfigError, RemoteProtocolError
from omega.protocol import oprf
from omega.protocol.aggregation import MSGPACK_MEDIA_TYPE
from omega.protocol.attestation import DeviceIdentity
from omega.protocol.cowatch import make_report, seal_report
from omega.protocol.cowatch_wire import (
    ALREADY_REPORTED,
    CowatchInfo,
    OprfPoints,
    OprfRequest,
    OprfResponse,
    ReportRequest,
    ReportResponse,
    pieces,
    prove,
)
from omega.protocol.messages import CowatchCursor
from omega.sync._cowatch_queue import COWATCH_QUEUE, MAX_QUEUED, Queued, load_queue, queue_cursor
from omega.sync.replies import error_for
from omega.sync.reports import REPORT_SPENT, _record, _spent_within
from omega.sync.retry import RetryPolicy
from omega.sync.transport import Response, Transport

__all__ = [
    "COWATCH_CURSOR",
    "COWATCH_EPOCH",
    "COWATCH_QUEUE",
    "MAX_QUEUED",
    "Contribution",
    "Contributor",
    "CowatchPairs",
    "CowatchTable",
    "NoCowatch",
    "Rows",
    "contributed",
    "cowatch_cursor",
]

T = TypeVar("T")
M = TypeVar("M", OprfRequest, ReportRequest)
COWATCH_EPOCH = "cowatch_epoch"
#: The epoch length (seconds) ``COWATCH_EPOCH`` was counted in.
COWATCH_EPOCH_S = "cowatch_epoch_s"
COWATCH_CURSOR = "cowatch_cursor"
Rows = list[tuple[int, list[tuple[int, int]]]]
#: Sends a request to the constellation as the registered viewer (token, retries).
SendAsViewer = Callable[[str, str, bytes | None, str], Awaitable[Response]]


@runtime_checkable
class CowatchPairs(Protocol):
    def pairs_to_contribute(self, epoch: int, limit: int) -> list[tuple[int, int]]: ...


@runtime_checkable
class CowatchTable(Protocol):
    def apply_cowatch(self, version: int, rows: Rows) -> None: ...


def cowatch_cursor(stored: str) -> CowatchCursor:
    """The stored "version:source" cursor; the start when none or unreadable."""
    version, _, source = stored.partition(":")
    try:
        return CowatchCursor(version=max(0, int(version)), source=max(-1, int(source)))
    except ValueError:
        return CowatchCursor()


class NoCowatch:
    """The default for a brain without co-watch: nothing to contribute, rows dropped."""

    def pairs_to_contribute(self, epoch: int, limit: int) -> list[tuple[int, int]]:
        return []

    def apply_cowatch(self, version: int, rows: Rows) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Contribution:
    """One sync's contribution: pairs sent, queued by the helper (now, or by an earlier
    try), refused (and why); ``resent`` of the pairs sent were queued by an earlier sync
    whose sending failed (they were paid for then)."""

    epoch: int
    sent: int
    queued: int
    errors: list[str]
    resent: int = 0


def contributed(brain: Brain, epoch: int, epoch_s: float | None = None) -> bool:
    """Whether the TV contributed new pairs in ``epoch`` (of ``epoch_s`` seconds; None:
    the length the last contribution was counted in) or a later one. A later one counts
    too: a TV whose clock went back must not ask for an epoch it contributed in, for
    which the brain would hand the same pairs again (the budget would pay twice; the
    helper would refuse them as already reported). Epochs of another length are
    compared in time: the TV waits until the one it contributed in has ended, and a
    constellation that lengthened its epochs (smaller numbers) does not silence it."""
    try:
        last = int(brain.sync.cursor(COWATCH_EPOCH, "-1"))
        length = float(brain.sync.cursor(COWATCH_EPOCH_S) or (epoch_s or 0.0))
    except ValueError:
        return False
    if epoch_s is None or length == epoch_s:
        return last >= epoch
    return (last + 1) * length > epoch * epoch_s


def _decode(answer: Response, kind: type[T], who: str) -> T:
    try:
        return msgspec.msgpack.decode(answer.body, type=kind)
    except msgspec.DecodeError as exc:
        raise RemoteProtocolError(f"{who} answered a malformed {kind.__name__}: {exc}") from None


class Contributor:
    """Contributes a TV's pairs once per epoch. ``helper``: a transport to the helper;
    ``identity``: the device's certificate and key (the helper counts attested devices);
    ``retry``: how a request to the helper is retried (the constellation's go through the
    sync client's). Every request is at most ``MAX_REQUEST_BYTES``: the points and reports
    go in as many pieces as that takes, and a retried piece is counted once by both
    servers (they charge a point, and queue a device's tag, once). Pairs the helper did
    not confirm stay queued in the brain's sync cursors and go first at the next sync."""

    def __init__(
        self,
        *,
        helper: Transport,
        identity: DeviceIdentity,
        epsilon: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        if epsilon is not None and epsilon < 0:
            raise ConfigError("the co-watch epsilon per pair must be ≥ 0")
        self.helper = helper
        self.identity = identity
        self.epsilon = epsilon
        self.retry = retry or RetryPolicy()

    async def _to_helper(
        self, path: str, kind: str, message: OprfRequest | ReportRequest
    ) -> tuple[Response, int]:
        """``message`` to the helper with retries, signed afresh for every try (the helper
        accepts a proof once); the answer and how many tries it took."""
        tries = 0

        async def attempt() -> Response:
            nonlocal tries
            tries += 1
            signed = msgspec.structs.replace(message, proof=prove(self.identity, kind, message))
            answer = await self.helper.request(
                "POST", path, body=_encode(signed), headers={"Content-Type": MSGPACK_MEDIA_TYPE}
            )
            if not 200 <= answer.status < 300:
                raise error_for(answer)
            return answer

        return await self.retry.call(attempt), tries

    def pair_epsilon(self, brain: Brain) -> float:
        """What one pair costs the budget: ``epsilon`` if given, else the brain's
        ``cowatch_epsilon``."""
        return brain.config.cowatch_epsilon if self.epsilon is None else self.epsilon

    def affordable(self, brain: Brain, most: int, now: float) -> int:
        """How many pairs (at most ``most``) the privacy budget pays for at ``now``."""
        epsilon = self.pair_epsilon(brain)
        budget = brain.config.report_budget
        if budget <= 0 or epsilon <= 0:
            return most
        spent = _spent_within(
            brain.sync.cursor(REPORT_SPENT), now, brain.config.report_window_s, budget
        )
        used = sum(e for _, e in spent)
        return max(0, min(most, int((budget - used + 1e-9) // epsilon)))

    def renews_at(self, brain: Brain, now: float) -> float:
        """The earliest time (``now`` or later) the budget pays for one more pair, if
        nothing else is spent meanwhile: when enough of what it spent leaves its window."""
        epsilon = self.pair_epsilon(brain)
        budget, window = brain.config.report_budget, brain.config.report_window_s
        if budget <= 0 or epsilon <= 0:
            return now
        spent = sorted(_spent_within(brain.sync.cursor(REPORT_SPENT), now, window, budget))
        left = budget - sum(e for _, e in spent)
        for at, e in spent:
            if left + 1e-9 >= epsilon:
                break
            left += e
            now = max(now, at + window)
        return now

    def _spend(self, brain: Brain, n: int, now: float) -> str | None:
        """The budget record with ``n`` pairs spent now (None: no budget kept)."""
        epsilon = self.pair_epsilon(brain)
        budget = brain.config.report_budget
        if budget <= 0 or epsilon <= 0:
            return None
        spent = _spent_within(
            brain.sync.cursor(REPORT_SPENT), now, brain.config.report_window_s, budget
        )
        spent.extend((now, float(epsilon)) for _ in range(n))
        return _record(spent)

    async def contribute(
        self, brain: Brain, pairs: CowatchPairs, send: SendAsViewer
    ) -> Contribution | None:
        """This sync's contribution: what earlier ones left queued first, then this
        epoch's new pairs (None: nothing was sent)."""
        info_answer = await send("GET", "/api/omega/cowatch", None, "application/json")
        try:
            info = msgspec.json.decode(info_answer.body, type=CowatchInfo)
        except msgspec.DecodeError as exc:
            raise RemoteProtocolError(f"the co-watch info is malformed: {exc}") from None
        now = float(brain.clock.now())
        epoch = int(now // info.epoch_s)
        waiting, leader = load_queue(brain)
        if not waiting and brain.sync.cursor(COWATCH_QUEUE):  # unreadable, or another order
            brain.sync.set_cursors({COWATCH_QUEUE: ""})
        # Sent first, charged nothing more; it raises (and keeps the rest) if a piece fails.
        resent = await self._deliver(brain, waiting, leader, info, send, epoch, again=True)
        if contributed(brain, epoch, info.epoch_s):
            return resent
        # The servers' bound is per epoch: what was re-sent takes its slots.
        allowed = self.affordable(brain, info.per_epoch - (resent.sent if resent else 0), now)
        if allowed == 0:  # the budget is spent: the epoch stays open, nothing is asked for
            return resent
        # Only what the budget pays for is asked for: the brain records those as sent.
        chosen = list(dict.fromkeys(pairs.pairs_to_contribute(epoch, allowed)))[:allowed]
        if not chosen:  # nothing watched yet: the epoch stays open for later syncs
            return resent
        items = [Queued.blind(a, b) for a, b in chosen]
        spent = self._spend(brain, len(chosen), now)
        # Recorded with the pairs queued before anything is sent (the queue is empty
        # here: what was re-sent is answered, or its rest left no slot): a crash or a
        # failed piece leaves them queued for the next sync, never charged twice.
        brain.sync.set_cursors(
            {
                COWATCH_EPOCH: str(epoch),
                COWATCH_EPOCH_S: repr(float(info.epoch_s)),
                COWATCH_QUEUE: queue_cursor(brain, items, b""),
            }
            | ({REPORT_SPENT: spent} if spent else {})
        )
        fresh = await self._deliver(brain, items, b"", info, send, epoch, again=False)
        assert fresh is not None
        if resent is None:
            return fresh
        return Contribution(
            epoch,
            resent.sent + fresh.sent,
            resent.queued + fresh.queued,
            resent.errors + fresh.errors,
            resent=resent.sent,
        )

    async def _deliver(
        self,
        brain: Brain,
        items: list[Queued],
        leader: bytes,
        info: CowatchInfo,
        send: SendAsViewer,
        epoch: int,
        *,
        again: bool,
    ) -> Contribution | None:
        """Sends the queued ``items`` (at most an epoch's bound of them), each step in
        requests of at most ``MAX_REQUEST_BYTES``: the OPRF through both servers for those
        not evaluated yet, then the sealed reports through the helper. The queue is
        stored as it ends, with every item the helper did not answer for (also when a
        piece fails, which is raised). ``again``: the items were queued by an earlier
        sync (an earlier try may have reached the helper)."""
        if not items:
            return None
        batch, later = list(items[: info.per_epoch]), items[info.per_epoch :]
        done = 0  # batch[:done] answered for by the helper
        queued, errors = 0, []
        try:
            await self._evaluated(batch, send)
            self._sealed(batch, leader, info)
            leader = info.leader_key
            reports = [q.report for q in batch if q.report is not None]
            for piece in pieces(reports, self._sized(ReportRequest(reports=[]), "reports")):
                answer, tries = await self._to_helper(
                    "/helper/v1/cowatch/reports", "reports", ReportRequest(reports=piece)
                )
                answered = _decode(answer, ReportResponse, "helper").errors
                if len(answered) != len(piece):
                    raise RemoteProtocolError("the helper's answers do not match the reports")
                for error in answered:
                    # ALREADY_REPORTED: an earlier try reached the helper (a retry, or a
                    # re-send), or the brain repeated a pair: either way it holds one.
                    if not error or (error == ALREADY_REPORTED and (again or tries > 1)):
                        queued += 1
                    else:
                        errors.append(error)
                done += len(piece)
        finally:
            brain.sync.set_cursors(
                {COWATCH_QUEUE: queue_cursor(brain, batch[done:] + later, leader)}
            )
        return Contribution(epoch, len(batch), queued, errors)

    async def _evaluated(self, batch: list[Queued], send: SendAsViewer) -> None:
        """Each item of ``batch`` with its OPRF output (in place)."""
        need = [i for i, q in enumerate(batch) if not q.output]
        if not need:
            return
        outputs = await self._evaluate([batch[i].point for i in need], send)
        for i, point in zip(need, outputs, strict=True):
            output = oprf.finalize(batch[i].blinded(), point)
            batch[i] = msgspec.structs.replace(batch[i], output=output)

    def _sealed(self, batch: list[Queued], leader: bytes, info: CowatchInfo) -> None:
        """Each item of ``batch`` with its report sealed to the constellation's key (in
        place): those sealed to another key are made and sealed again."""
        try:
            key = X25519PublicKey.from_public_bytes(info.leader_key)
        except ValueError:
            raise RemoteProtocolError("the constellation's co-watch key is not X25519") from None
        for i, q in enumerate(batch):
            if q.report is None or leader != info.leader_key:
                report = seal_report(make_report(q.output, q.a, q.b, k=info.threshold), key)
                batch[i] = msgspec.structs.replace(q, report=report)

    async def _evaluate(self, points: list[bytes], send: SendAsViewer) -> list[bytes]:
        """``points`` times ``k1`` (the helper) then ``k2`` (the constellation), piece by
        piece. A retried piece is charged once: both servers charge a point once an epoch."""
        half: list[bytes] = []
        for piece in pieces(points, self._sized(OprfRequest(points=[]), "oprf")):
            answer, _ = await self._to_helper(
                "/helper/v1/cowatch/oprf", "oprf", OprfRequest(points=piece)
            )
            half.extend(_matching(_decode(answer, OprfResponse, "helper").points, piece))
        whole: list[bytes] = []
        for piece in pieces(half, lambda p: len(_encode(OprfPoints(points=list(p))))):
            body = _encode(OprfPoints(points=piece))
            answer = await send("POST", "/api/omega/cowatch/oprf", body, MSGPACK_MEDIA_TYPE)
            evaluated = _decode(answer, OprfResponse, "the constellation").points
            whole.extend(_matching(evaluated, piece))
        return whole

    def _sized(self, empty: M, kind: str) -> Callable[[Sequence[Any]], int]:
        """The encoded size of ``empty`` holding a piece, with a proof (constant size)."""
        proof = prove(self.identity, kind, empty)
        field = "points" if isinstance(empty, OprfRequest) else "reports"

        def size(piece: Sequence[Any]) -> int:
            filled = msgspec.structs.replace(empty, proof=proof, **{field: list(piece)})
            return len(_encode(filled))

        return size


def _encode(message: msgspec.Struct) -> bytes:
    return msgspec.msgpack.encode(message)


def _matching(answered: list[bytes], sent: list[bytes]) -> list[bytes]:
    if len(answered) != len(sent):
        raise RemoteProtocolError("the OPRF answers do not match the points sent")
    return answered
