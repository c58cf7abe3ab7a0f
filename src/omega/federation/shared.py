"""The leader's half of two-server popularity: check and count queued shared reports.

A round takes up to ``share_batch`` queued reports (``omega.protocol.shares``). Reports
over another catalog size are dropped. The leader evaluates its key of each; ``prepare``
gets the helper's half of each ``d = z − a`` (an answer that depends on nothing the
leader sends); the leader sends its shares of ``d`` and of ``z² − z*`` with the reports
to ``aggregate``, and the helper decides which pass (the shares add to 0), counts each
report once, and answers with its share of their histogram plus its noise. The leader
adds its own share and noise, and folds the exact (noisy) counts into the catalog's
counts; deleting the batch from the queue is the same transaction. A batch smaller than
``min_batch`` valid reports waits for more.

A crash between the helper's answer and the fold is safe: the batch is tagged in the
queue before the helper is asked, the next round sends exactly that batch again, and the
helper answers it with the answer it kept (two workers racing on it fold it once).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from omega.errors import InputError, ServerError
from omega.protocol.aggregation import (
    AggregateItem,
    AggregateRequest,
    AggregateResponse,
    BatchTooSmall,
    PrepareRequest,
    PrepareResponse,
    verify_key,
)
from omega.protocol.dpf import PRIME
from omega.protocol.messages import SharedReport
from omega.protocol.noise import LaplaceSampler, laplace_sampler, laplace_variance
from omega.protocol.shares import HelperShare, Sketch, sketch
from omega.storage.base import Codebook, Storage, SupportCounts

__all__ = ["HelperClient", "SharedCounting", "fold_shares", "signed"]

log = logging.getLogger("omega.federation")


class HelperClient(Protocol):
    """The helper as a round sees it; ``omega.constellation`` reaches one over HTTP."""

    def prepare(self, request: PrepareRequest) -> PrepareResponse: ...

    def aggregate(self, request: AggregateRequest) -> AggregateResponse: ...


@dataclass(frozen=True, slots=True)
class SharedCounting:
    """What a round needs to count shared reports: the helper and the shared secret."""

    helper: HelperClient
    secret: bytes
    #: Reports per batch, the fewest a batch may count, and the leader's noise.
    batch: int = 1000
    min_batch: int = 100
    noise_epsilon: float = 4.0
    #: Seeds the leader's noise (simulations that must reproduce, never in production);
    #: None: OpenDP's exact sampler from a cryptographic source (``omega.protocol.noise``).
    noise_seed: int | None = None
    #: Draws the leader's noise for one batch's histogram (made from the two above).
    noise: LaplaceSampler = field(init=False, repr=False)

    def __post_init__(self) -> None:
        sampler = laplace_sampler(self.noise_epsilon, seed=self.noise_seed)
        object.__setattr__(self, "noise", sampler)  # frozen: set once, here

    @property
    def verify_key(self) -> bytes:
        return verify_key(self.secret)

    def close(self) -> None:
        """Close the helper connection (if it holds one)."""
        close = getattr(self.helper, "close", None)
        if close is not None:
            close()


def signed(values: np.ndarray) -> np.ndarray:
    """Elements of Z_p as signed integers (noise can make a count negative)."""
    v = values % PRIME
    return np.where(v > PRIME // 2, v - PRIME, v)


def _leader_sketch(report: SharedReport, key: bytes) -> Sketch | None:
    try:
        return sketch(0, report, HelperShare.parse(report.leader), key)
    except InputError:
        return None


@dataclass(frozen=True, slots=True)
class _Batch:
    """Queued reports to count together: a tagged batch resent whole, or new ones."""

    queued: list[tuple[int, SharedReport, str | None]]  # (seq, report, tag)
    tag: str | None


@dataclass(frozen=True, slots=True)
class _Checked:
    """A queued report the leader evaluated and the helper prepared."""

    seq: int
    report: SharedReport
    sketch: Sketch  # the leader's
    helper_d: int  # the helper's share of d


def fold_shares(storage: Storage, codebook: Codebook, counting: SharedCounting) -> int:
    """Check and count one batch of queued shared reports; how many were counted."""
    size = len(codebook.item_ids)
    batch = _next_batch(storage, counting, size)
    if batch is None:
        return 0
    usable = _prepare(storage, counting, size, batch.queued)
    if not usable or (batch.tag is None and len(usable) < counting.min_batch):
        return 0
    seqs = [u.seq for u in usable]
    if batch.tag is None:
        storage.tag_shares(seqs=seqs, batch=uuid.uuid4().hex)
    answer = _aggregate(storage, counting, size, usable)
    if answer is None:
        return 0
    counted = sum(answer.accepted)
    histogram = _histogram(usable, answer, counting.noise(size))
    old = next(
        (
            c
            for c in storage.popularity_counts(codebook_id=codebook.codebook_id)
            if c.buckets == 0 and c.epsilon == counting.noise_epsilon
        ),
        None,
    )
    merged = _merged(
        old,
        histogram,
        reports=counted,
        variance=answer.noise_variance + laplace_variance(counting.noise_epsilon),
        codebook_id=codebook.codebook_id,
        epsilon=counting.noise_epsilon,
    )
    if not storage.fold_reports(seqs=seqs, counts=[merged], queue="shares"):
        return 0
    return counted


def _next_batch(storage: Storage, counting: SharedCounting, size: int) -> _Batch | None:
    """The batch to count now (dropping reports over another catalog size), or None."""
    queued = storage.pending_shares(limit=counting.batch)
    if not queued or size == 0:
        return None
    stale = [seq for seq, r, _ in queued if r.size != size]
    if stale:
        storage.fold_reports(seqs=stale, counts=[], queue="shares")
    tag = queued[0][2]
    if tag is not None:  # a batch the helper may have answered: send exactly it again
        return _Batch([q for q in queued if q[2] == tag and q[1].size == size], tag)
    queued = [q for q in queued if q[1].size == size]
    if len(queued) < counting.min_batch:
        return None
    return _Batch(queued, None)


def _prepare(
    storage: Storage,
    counting: SharedCounting,
    size: int,
    queued: list[tuple[int, SharedReport, str | None]],
) -> list[_Checked]:
    """Evaluate the leader's key of each report and ask the helper for its share of d;
    the reports that fail either are dropped from the queue."""
    key = counting.verify_key
    mine = [_leader_sketch(r, key) for _, r, _ in queued]
    asked = [(seq, r, s) for (seq, r, _), s in zip(queued, mine, strict=True) if s is not None]
    prepared = counting.helper.prepare(PrepareRequest(size=size, reports=[r for _, r, _ in asked]))
    if len(prepared.answers) != len(asked):
        raise ServerError(502, "the helper answered a different number of reports")
    usable = [
        _Checked(seq, r, s, a.d)
        for (seq, r, s), a in zip(asked, prepared.answers, strict=True)
        if not a.error
    ]
    unusable = sorted({seq for seq, _, _ in queued} - {u.seq for u in usable})
    if unusable:
        storage.fold_reports(seqs=unusable, counts=[], queue="shares")
    return usable


def _aggregate(
    storage: Storage, counting: SharedCounting, size: int, usable: list[_Checked]
) -> AggregateResponse | None:
    """The helper's answer for the batch; None if it refused it (its reports dropped)."""
    items = []
    for u in usable:
        d = (u.sketch.d + u.helper_d) % PRIME
        items.append(AggregateItem(report=u.report, d=u.sketch.d, w=u.sketch.w(d)))
    try:
        answer = counting.helper.aggregate(AggregateRequest(size=size, items=items))
    except BatchTooSmall as exc:  # its reports are spent at the helper: drop them
        log.warning("the helper refused a batch, %d reports dropped: %s", len(usable), exc)
        storage.fold_reports(seqs=[u.seq for u in usable], counts=[], queue="shares")
        return None
    if len(answer.accepted) != len(usable) or len(answer.share) != 8 * size:
        raise ServerError(502, "the helper's aggregate does not match the batch")
    return answer


def _histogram(usable: list[_Checked], answer: AggregateResponse, noise: np.ndarray) -> np.ndarray:
    """The batch's counts: the leader's shares of the accepted reports, the helper's
    share and the leader's ``noise``, as signed integers."""
    total = np.zeros(len(noise), dtype=np.int64)
    for u, ok in zip(usable, answer.accepted, strict=True):
        if ok:
            total = (total + u.sketch.y) % PRIME
    helper_share = np.frombuffer(answer.share, dtype="<i8")
    return signed(total + helper_share + noise)


def _merged(
    old: SupportCounts | None,
    histogram: np.ndarray,
    *,
    reports: int,
    variance: float,
    codebook_id: str,
    epsilon: float,
) -> SupportCounts:
    """The catalog's counts with one batch's ``histogram`` added (``old`` if it fits)."""
    if old is not None and len(old.support) == 8 * len(histogram):
        histogram = histogram + np.frombuffer(old.support, dtype="<i8")
        reports += old.reports
        variance += old.noise_variance
    return SupportCounts(
        codebook_id, 0, epsilon, reports, histogram.astype("<i8").tobytes(), variance
    )
