"""The storage half of a sync: ingest a push, read and fit a pull.

:meth:`Exchange.sync` is what the routes await. It runs on the event loop and awaits the
store: a push through ``Storage.ingest_async`` (SQLite's writer; PostgreSQL's event-loop
connections, one statement), the release version likewise. What is left for a worker
thread is what misses the caches on a store whose reads may wait (PostgreSQL): a
viewer's region, a pull not fitted before. A worker-thread hop per sync cost more than
the work at ~500 syncs/s on SQLite and 0.4 ms of server CPU per sync on PostgreSQL (the
GIL handed to and fro; ``omega bench server --profile``).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict, TypeVar

import msgspec
from anyio import to_thread
from cachetools import LRUCache

from omega.clock import Clock
from omega.constellation.distribute import fit_pull, pattern_budget, with_cowatch
from omega.constellation.ingest import (
    CodebookCache,
    framed_push_digest,
    push_digest,
    review_push,
)
from omega.constellation.metrics import Metrics
from omega.constellation.problems import Problem
from omega.errors import ConflictError
from omega.protocol import codec
from omega.protocol.messages import (
    CowatchCursor,
    CowatchRow,
    PullRequest,
    PullResponse,
    PushAck,
    PushRequest,
    SyncResponse,
)
from omega.storage.base import Codebook, Storage, ViewerRecord

T = TypeVar("T")

__all__ = ["STOP_AFTER_INGEST", "Exchange", "ExchangeLimits"]

#: Failpoint: stop the process (SIGSTOP) right after a push commits, before its ack is
#: sent, so that a test can SIGKILL it from outside at that very point.
STOP_AFTER_INGEST = "stop-after-ingest"

#: Rows asked of storage for one pull, whatever the budget (the codec caps a pull at 4096).
_MAX_FETCH = 4096
#: Co-watch rows read per pull (a 5 KB page holds ~50 rows of 20 neighbours).
_COWATCH_FETCH = 256

#: Fitted pulls kept, by (since version, byte budget, release version): after a release,
#: every device pulls the same delta since the same version, and fitting one (reading,
#: decoding and trimming ~100 patterns to the budget) costs ~1.5 ms against ~0.1 for
#: an empty one; 1,000 devices pulling within two seconds saturated the server
#: (``omega bench server``: p95 200-500 ms for ~2 s after each release).
_PULLS_CACHED = 64

#: Registered viewers' regions kept in memory: a registration never changes, and reading
#: it from storage was one query per push (storage still checks the viewer exists).
_REGIONS_CACHED = 100_000


#: Bytes of a pull's budget always left for patterns, however much the seal and an ack
#: take (a budget smaller than this is left whole).
PATTERN_FLOOR = 512
_EMPTY_PULL = PullResponse(version=0)
#: Its frame's length: the same for every ack (:func:`_ack_bytes` once encoded it each time).
_EMPTY_PULL_BYTES = len(codec.encode(_EMPTY_PULL))


def _ack_bytes(ack: PushAck) -> int:
    """What ``ack`` adds to a ``/sync`` answer beside its pull, rounded up to 256 bytes: a
    few distinct budgets keep fitted pulls shared in the cache.

    Sized without checking it (``encoded_size``): the answer it travels in is checked
    whole when encoded, and checking it here too was a third of a pull's CPU."""
    size = codec.encoded_size(SyncResponse(pull=_EMPTY_PULL, ack=ack)) - _EMPTY_PULL_BYTES
    return -(-size // 256) * 256


def _region_of(viewer_id: str, viewer: ViewerRecord | None) -> str:
    if viewer is None:
        raise Problem(404, f"viewer {viewer_id} is not registered", slug="no-such-viewer")
    return viewer.region


@dataclass(frozen=True, slots=True)
class ExchangeLimits:
    max_patterns_per_batch: int
    min_pull_bytes: int
    max_pull_bytes: int
    #: The one kind of popularity report this server counts: two-server reports when it
    #: has a helper, ε-LDP reports otherwise. The other kind is dropped before the push is
    #: stored (counted in ``omega_rejections{reason="report_kind"}``): an attacker must not
    #: get a second channel (forged LDP reports drowned an exact list in noise), and a TV
    #: still sending the other kind keeps syncing its patterns.
    two_server_reports: bool = False
    #: Bytes of each budget left for the seal the route adds to the fitted answer
    #: (``ReleaseSealer.reserve``): the budget is the sealed frame's.
    seal_reserve: Callable[[], int] = lambda: 0
    #: What a two-server report costs the device that sends it (``share_noise_epsilon``;
    #: the device's own ``shared_epsilon`` should equal it), for ``omega_report_epsilon_spent``.
    share_epsilon: float = 0.0


class _StoreArguments(TypedDict):
    digest: str
    region: str
    ack: PushAck
    now: float


@dataclass(frozen=True, slots=True)
class _Ingestion:
    """A reviewed push, ready for the store: what :meth:`Exchange.push` and
    :meth:`Exchange.push_async` share (they differ only in how they await the store)."""

    received: PushRequest  # as the device sent it: what the digests are of
    push: PushRequest  # what is stored: without the reports this server does not count
    ack: PushAck
    region: str
    now: float

    def arguments(self, *, old_digest: bool = False) -> _StoreArguments:
        """``Storage.ingest``'s keyword arguments. ``old_digest``: under the digest servers
        stored until 2026-12, tried after a ``ConflictError``: a retry of a batch stored
        back then conflicts under today's (computed only then: it costs 35 µs)."""
        received = self.received
        digest = framed_push_digest(received) if old_digest else push_digest(received)
        return _StoreArguments(digest=digest, region=self.region, ack=self.ack, now=self.now)


class Exchange:
    def __init__(
        self,
        storage: Storage,
        codebooks: CodebookCache,
        *,
        limits: ExchangeLimits,
        clock: Clock,
        metrics: Metrics,
        failpoints: frozenset[str] = frozenset(),
        release_version: Callable[[], int] | None = None,
    ) -> None:
        """``release_version``: the latest release's version without asking storage (a
        server on PostgreSQL: its event broker's, which the release trigger's ``NOTIFY``
        moves within milliseconds of a commit — a pull then is answered as it would
        have been a moment earlier); by default storage is asked at every pull."""
        self._storage = storage
        self._release_version = release_version
        self._codebooks = codebooks
        self._limits = limits
        self._clock = clock
        self._metrics = metrics
        self._failpoints = failpoints
        # Looked up before a miss goes to storage (on a worker thread where reads may
        # wait). A miss raises (404) and stores nothing: only found viewers stay.
        self._regions: LRUCache[str, str] = LRUCache(maxsize=_REGIONS_CACHED)
        self._fitted: LRUCache[tuple[int, int, int], PullResponse] = LRUCache(_PULLS_CACHED)
        self._last_version = 0  # the release version the last pull was keyed on

    async def sync(
        self, viewer_id: str, push: PushRequest | None, pull: PullRequest, *, server_version: int
    ) -> tuple[PushAck | None, PullResponse]:
        """Ingest ``push`` (if any) for the authenticated viewer, then fit ``pull``."""
        ack = None
        if push is not None:
            ack = await self.push_async(viewer_id, push, server_version=server_version)
        return ack, await self.pull_async(pull, beside=ack)

    def push(self, viewer_id: str, push: PushRequest, *, server_version: int) -> PushAck:
        """Check and ingest ``push`` for the authenticated ``viewer_id`` (exactly once)."""
        codebook = self._codebooks.get()
        ack = self._review(viewer_id, push, codebook=codebook, server_version=server_version)
        ingestion = self._prepare(push, ack=ack, region=self._region(viewer_id))
        try:
            stored = self._storage.ingest(ingestion.push, **ingestion.arguments())
        except ConflictError:  # stored under the old digest? (see framed_push_digest)
            stored = self._storage.ingest(ingestion.push, **ingestion.arguments(old_digest=True))
        return self._ingested(ingestion, stored)

    async def push_async(
        self, viewer_id: str, push: PushRequest, *, server_version: int
    ) -> PushAck:
        """:meth:`push` awaited on an event loop (see the module docstring): what may read
        storage (the codebook past its cache's life, a viewer's region not cached) runs
        on a worker thread where reads may wait; the caches are written here, on the
        loop's thread (they are not thread-safe)."""
        known, codebook = self._codebooks.fresh()
        if not known:
            codebook = await self._read(self._codebooks.get)
        ack = self._review(viewer_id, push, codebook=codebook, server_version=server_version)
        region = self._regions.get(viewer_id)
        if region is None:
            viewer = await self._read(self._storage.get_viewer, viewer_id)
            region = self._regions[viewer_id] = _region_of(viewer_id, viewer)
        ingestion = self._prepare(push, ack=ack, region=region)
        try:
            stored = await self._storage.ingest_async(ingestion.push, **ingestion.arguments())
        except ConflictError:  # stored under the old digest? (see framed_push_digest)
            stored = await self._storage.ingest_async(
                ingestion.push, **ingestion.arguments(old_digest=True)
            )
        return self._ingested(ingestion, stored)

    async def _read(self, read: Callable[..., T], *args: object) -> T:
        """``read(*args)``: inline where storage reads never wait (SQLite), else on a
        worker thread."""
        if self._storage.inline_reads:
            return read(*args)
        return await to_thread.run_sync(read, *args)

    def _prepare(self, push: PushRequest, *, ack: PushAck, region: str) -> _Ingestion:
        """Everything before storage that :meth:`push` and :meth:`push_async` share, once
        the push is reviewed and the viewer's region known."""
        return _Ingestion(
            received=push,
            push=self._counted_reports(push),
            ack=ack,
            region=region,
            now=self._clock.now(),
        )

    def _counted_reports(self, push: PushRequest) -> PushRequest:
        """``push`` without the kind of popularity report this server does not count."""
        if self._limits.two_server_reports and push.reports:
            self._metrics.rejections.labels("report_kind").inc()
            return msgspec.structs.replace(push, reports=[])
        if not self._limits.two_server_reports and push.shares:
            self._metrics.rejections.labels("report_kind").inc()
            return msgspec.structs.replace(push, shares=[])
        return push

    def _review(
        self,
        viewer_id: str,
        push: PushRequest,
        *,
        codebook: Codebook | None,
        server_version: int,
    ) -> PushAck:
        """The checks before ingestion: the ack to store."""
        if push.viewer_id != viewer_id:
            raise Problem(403, "a viewer may only push its own patterns", slug="not-your-viewer")
        count = len(push.added) + len(push.updated) + len(push.removed)
        cap = self._limits.max_patterns_per_batch
        if count > cap:
            raise Problem(
                413,
                f"a push carries at most {cap} patterns and removals; this one has {count}: "
                "split it into several batches",
                slug="too-many-patterns",
            )
        return review_push(push, codebook, server_version=server_version)

    def remember_region(self, viewer_id: str, region: str) -> None:
        """A viewer just registered here: its first push needs no storage read."""
        self._regions[viewer_id] = region

    def _region(self, viewer_id: str) -> str:
        """The viewer's region, from the cache or storage (404 if it is not registered);
        for :meth:`push`, whose callers run it on one thread at a time."""
        region = self._regions.get(viewer_id)
        if region is None:
            viewer = self._storage.get_viewer(viewer_id)
            region = self._regions[viewer_id] = _region_of(viewer_id, viewer)
        return region

    def _ingested(self, ingestion: _Ingestion, stored: PushAck) -> PushAck:
        if STOP_AFTER_INGEST in self._failpoints:
            os.kill(os.getpid(), signal.SIGSTOP)  # frozen here until killed (or continued)
        ack, push = ingestion.ack, ingestion.push
        if stored is ack:  # first delivery; a retry returns the ack stored back then
            self._metrics.patterns_ingested.inc(len(ack.accepted))
            self._metrics.patterns_rejected.inc(len(ack.rejected))
            if push.reports or push.shares:
                self._metrics.reports_accepted(
                    push.reports, len(push.shares), shared_epsilon=self._limits.share_epsilon
                )
        return stored

    def pull(self, pull: PullRequest, *, beside: PushAck | None = None) -> PullResponse:
        """The delta since ``pull.since_version`` that fits the device's byte budget.

        The budget is the sealed frame's: the seal's bytes and the ack sent ``beside``
        the pull (a ``/sync`` answer) are left out of it — while that leaves at least
        ``PATTERN_FLOOR`` bytes (or the whole budget, if smaller) for the patterns; past
        that the answer exceeds the budget by what must travel anyway.
        """
        version = self._keyed_version(self._storage.release_version())
        key = (pull.since_version, self._budget(pull, beside), version)
        fitted = self._fitted.get(key)
        if fitted is None:
            fitted = self._fitted[key] = self._fit(*key)
        return self._cowatch(fitted, pull, key[1])

    async def pull_async(self, pull: PullRequest, *, beside: PushAck | None = None) -> PullResponse:
        """:meth:`pull` awaited on an event loop (see the module docstring)."""
        if self._storage.inline_reads:
            return self.pull(pull, beside=beside)
        if self._release_version is not None:
            version = self._release_version()
        else:
            version = await self._storage.release_version_async()
        key = (pull.since_version, self._budget(pull, beside), self._keyed_version(version))
        fitted = self._fitted.get(key)
        if fitted is None:  # kept by the loop's thread: the cache is not thread-safe
            fitted = self._fitted[key] = await to_thread.run_sync(self._fit, *key)
        if pull.cowatch is None:
            return fitted
        return await to_thread.run_sync(self._cowatch, fitted, pull, key[1])

    def _keyed_version(self, version: int) -> int:
        """``version``, after forgetting every fitted pull if it went back (a restored or
        replaced store numbers its releases again: an answer cached under a number
        reused that way would be another release's)."""
        if version < self._last_version:
            self._fitted.clear()
        self._last_version = version
        return version

    def _budget(self, pull: PullRequest, beside: PushAck | None) -> int:
        """The bytes left for patterns (see :meth:`pull`)."""
        budget = min(max(pull.max_bytes, self._limits.min_pull_bytes), self._limits.max_pull_bytes)
        extras = self._limits.seal_reserve() + (_ack_bytes(beside) if beside else 0)
        return max(budget - extras, min(budget, PATTERN_FLOOR))

    def _cowatch(self, fitted: PullResponse, pull: PullRequest, budget: int) -> PullResponse:
        """``fitted`` with the co-watch rows after the device's cursor that fit beside it
        (from the start when the cursor is past this server's table: a restored store);
        as it is for a device that asks for none (no ``cowatch`` cursor)."""
        after = pull.cowatch
        if after is None:
            return fitted
        cowatch = self._storage.cowatch
        if after.version > cowatch.version():
            after = CowatchCursor()
        rows = cowatch.rows_after(version=after.version, source=after.source, limit=_COWATCH_FETCH)
        return with_cowatch(
            fitted,
            [(r.version, CowatchRow(source=r.source, neighbours=r.neighbours)) for r in rows],
            after=after,
            max_bytes=budget,
            size_of=lambda response: len(codec.encode(response)),
            fetched_all=len(rows) < _COWATCH_FETCH,
        )

    def _fit(self, since: int, budget: int, version: int) -> PullResponse:
        """The pull cached under (``since``, ``budget``, ``version``); the release version
        in the key means a new release is never answered from the cache."""
        limit = pattern_budget(budget, cap=_MAX_FETCH)
        delta = self._storage.release_delta(since_version=since, limit=limit)
        if delta.version < since:
            # The device is ahead of this server's history (database restored or replaced):
            # send it everything from the start; its cursor moves back to our version.
            since = 0
            delta = self._storage.release_delta(since_version=0, limit=limit)
        # The frame is what travels, so the budget is checked on the encoded size.
        return fit_pull(
            delta,
            since_version=since,
            max_bytes=budget,
            fetched_limit=limit,
            size_of=lambda response: len(codec.encode(response)),
        )
