"""The device's sync client: a thin async shell around the decisions in ``push``,
``replies``, ``retry`` and ``cursors``; it reaches the brain only through its public API
and ``brain.sync`` (:class:`omega.brain.SyncState`).

One :meth:`SyncClient.sync` is one push + pull round trip (``POST /api/omega/sync``),
plus further pull pages while the server says ``more`` (bounded). The durable order is:

1. record the batch (``brain.sync.begin_batch``: payload and outbox membership) before
   sending;
2. on the ack, ``brain.sync.ack_batch`` — only then do its patterns leave the outbox;
3. apply each pulled page with ``brain.sync.apply_release`` — one transaction that also
   moves the ``release_version`` cursor, so the cursor is never ahead of the data.

A crash anywhere leaves a state the next sync completes: an in-flight batch is resent
with the same id and bytes (the server applies it once), an unapplied page is pulled
again. A corrupt answer raises :class:`RemoteProtocolError` with nothing applied.

Every answer is checked before it is decoded: it must be sealed by a release key this
device trusts (pinned at registration, or configured with ``release_keys``; see
``omega.sync.releases``) and bound to the very request sent (each carries a fresh
nonce). Otherwise :class:`SignatureError`, with nothing applied and no cursor moved.

The device's credentials, release keys and authenticated requests are its
``omega.sync._session.Session``'s.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from omega.brain import Brain, ConflictStrategy, InflightBatch
from omega.errors import ConfigError, OmegaError, RemoteProtocolError
from omega.protocol import MAX_PULL_BYTES, NONCE_BYTES, codec
from omega.protocol.attestation import DeviceIdentity
from omega.protocol.messages import (
    PullRequest,
    PullResponse,
    PushRequest,
    SyncRequest,
    SyncResponse,
)
from omega.sync._session import Session
from omega.sync.codebook import fetch_codebook
from omega.sync.conflicts import check_strategy
from omega.sync.cowatch import (
    COWATCH_CURSOR,
    Contribution,
    Contributor,
    CowatchPairs,
    CowatchTable,
    NoCowatch,
    cowatch_cursor,
)
from omega.sync.cursors import CatalogOrder, CodebookLabel, Credentials, ReleasePins
from omega.sync.push import MAX_PUSH_BYTES, MAX_PUSH_PATTERNS, build_push, new_batch_id
from omega.sync.releases import ReleaseTrust
from omega.sync.replies import open_sealed, read_sync_reply
from omega.sync.reports import next_report
from omega.sync.retry import RetryPolicy
from omega.sync.transport import Response, Transport

__all__ = ["SyncClient", "SyncResult"]

_log = logging.getLogger("omega.sync")
#: Pull pages fetched in one sync at most (the rest waits for the next sync).
MAX_PAGES = 8


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one sync did. ``push_bytes``: the first request's body (push + pull request);
    ``pull_bytes``: every answer body; ``next_sync_after``: the server's pace (seconds)."""

    viewer_id: str
    batch_id: str | None  # the batch pushed (None: the outbox was empty)
    resent: bool  # the batch was in flight from an earlier, unanswered sync
    pushed: int
    accepted: int
    rejected: int
    pulled: int
    removed: int
    version: int
    pages: int
    more: bool  # the server still has changes past ``version``
    push_bytes: int
    pull_bytes: int
    next_sync_after: float
    outbox_remaining: int
    refreshes: int
    #: Co-watch pairs the helper queued in this sync, or why the contribution failed.
    cowatch_sent: int = 0
    cowatch_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _helper_key(raw: bytes | None) -> X25519PublicKey | None:
    if raw is None:
        return None
    try:
        return X25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise ConfigError(f"a helper key is 32 raw X25519 bytes, got {len(raw)}") from None


class SyncClient:
    """Syncs one brain through one transport. Serialises its own syncs; registration and
    token refresh are single-flight across everything the client is doing.

    ``on_step`` is called with the name of each durable step as it completes
    (``batch-recorded``, ``reply-received``, ``acked``, ``page-applied``): crash tests
    stop the process there.
    """

    def __init__(
        self,
        brain: Brain,
        transport: Transport,
        *,
        region: str = "global",
        device_model: str = "tv",
        max_pull_bytes: int = 5120,
        max_push_patterns: int = MAX_PUSH_PATTERNS,
        max_push_bytes: int = MAX_PUSH_BYTES,
        strategy: ConflictStrategy | None = None,
        retry: RetryPolicy | None = None,
        max_pages: int = MAX_PAGES,
        on_step: Callable[[str], None] | None = None,
        report_rng: random.Random | None = None,
        helper_key: bytes | None = None,
        attestation: DeviceIdentity | None = None,
        release_keys: Mapping[str, bytes] | None = None,
        cowatch: Contributor | None = None,
        cowatch_pairs: CowatchPairs | None = None,
        cowatch_table: CowatchTable | None = None,
    ) -> None:
        """``helper_key``: the raw X25519 public key of the helper that counts two-server
        reports with the constellation (pinned, as a TV pins its server's certificate);
        None sends ε-LDP reports instead. ``attestation``: the device's certificate and
        key, which sign its registration (a server refuses unattested devices by default).
        ``release_keys``: the constellation's release keys (kid → raw Ed25519 public key)
        configured out of band; they win over the keys registration gives. None: trust
        the keys given at registration.

        Co-watch (``omega.sync.cowatch``): ``cowatch`` contributes the pairs of
        ``cowatch_pairs`` once per epoch through the helper; pulled rows go to
        ``cowatch_table``. Either defaults to the brain when it implements the protocol,
        else to a no-op (nothing contributed; no rows asked for)."""
        if not 1 <= max_pull_bytes <= MAX_PULL_BYTES:  # refused before anything is sent
            raise ConfigError(f"max_pull_bytes must be 1 … {MAX_PULL_BYTES}, got {max_pull_bytes}")
        chosen = check_strategy(strategy or brain.config.conflict_strategy)
        if chosen != brain.config.conflict_strategy:
            raise ConfigError(
                f"the brain combines evidence with {brain.config.conflict_strategy!r}; open it "
                f"with BrainConfig(conflict_strategy={chosen!r}) to use {chosen!r}"
            )
        self.brain = brain
        self.transport = transport
        self.region = region
        self.device_model = device_model
        self.max_pull_bytes = max_pull_bytes
        self.max_push_patterns = max_push_patterns
        self.max_push_bytes = max_push_bytes
        self.strategy: ConflictStrategy = chosen
        self.retry = retry or RetryPolicy()
        self.max_pages = max(1, max_pages)
        self._on_step = on_step
        # The LDP reports' randomness: the system RNG on a TV (None); a seeded one in the
        # simulator, so that a run's popularity estimates are reproducible.
        self._report_rng = report_rng
        self._helper_key = _helper_key(helper_key)
        self._session = Session(
            brain,
            transport,
            region=region,
            device_model=device_model,
            retry=self.retry,
            attestation=attestation,
            release_keys=release_keys,
        )
        self._positions: dict[str, int] | None = None  # the catalog order, once read
        self._cowatch = cowatch
        self._pairs = cowatch_pairs or (brain if isinstance(brain, CowatchPairs) else NoCowatch())
        self._table = cowatch_table or (brain if isinstance(brain, CowatchTable) else NoCowatch())
        self._sync_lock = asyncio.Lock()

    # -- the round trip ----------------------------------------------------------------
    async def sync(self) -> SyncResult:
        async with self._sync_lock:
            brain = self.brain
            refreshes_before = self.refreshes
            await asyncio.to_thread(brain.flush)
            creds = await self.credentials()
            trust = await self.release_trust()
            push, resent = await asyncio.to_thread(self._next_push, creds)
            self._step("batch-recorded")
            since = brain.sync.release_version()
            first = self._sync_request(creds, since, trust, push)
            reply, sent, received = await self._exchange(
                first, trust, batch_id=push.batch_id if push else None
            )
            self._step("reply-received")
            if push is not None:
                await asyncio.to_thread(brain.sync.ack_batch, push.batch_id)
                self._step("acked")
            pull, pages, pulled, removed = reply.pull, 1, 0, 0
            while True:
                if pull.version < since:
                    # The server's history restarted (restored or replaced): it resends
                    # everything, so our collective tier starts afresh with it, and its
                    # codebook publications may count from lower again. (Only a sealed
                    # answer to this very request says so: no replay can.)
                    await asyncio.to_thread(brain.sync.forget_release)
                    await asyncio.to_thread(CodebookLabel.record_sequence, brain, 0)
                since = pull.version
                await asyncio.to_thread(self._apply, pull)
                self._step("page-applied")
                pulled, removed = pulled + len(pull.patterns), removed + len(pull.removed)
                if not pull.more or pages >= self.max_pages:
                    break
                page = self._sync_request(creds, pull.version, trust)
                answer, _, size = await self._exchange(page, trust, batch_id=None)
                pull = answer.pull
                pages, received = pages + 1, received + size
            ack = reply.ack
            contribution, cowatch_error = await self._contribute()
            return SyncResult(
                viewer_id=creds.viewer_id,
                batch_id=push.batch_id if push else None,
                resent=resent,
                pushed=0
                if push is None
                else len(push.added) + len(push.updated) + len(push.removed),
                accepted=0 if ack is None else len(ack.accepted),
                rejected=0 if ack is None else len(ack.rejected),
                pulled=pulled,
                removed=removed,
                version=pull.version,
                pages=pages,
                more=pull.more,
                push_bytes=sent if push is not None else 0,
                pull_bytes=received,
                next_sync_after=pull.next_sync_after,
                outbox_remaining=brain.sync.outbox_size(),
                refreshes=self.refreshes - refreshes_before,
                cowatch_sent=contribution.queued if contribution else 0,
                cowatch_error=cowatch_error,
            )

    async def _contribute(self) -> tuple[Contribution | None, str | None]:
        """This epoch's co-watch contribution, if due. Its failure is reported in the
        result (and logged), not raised: the sync before it is complete."""
        if self._cowatch is None or isinstance(self._pairs, NoCowatch):
            return None, None

        async def send(method: str, path: str, body: bytes | None, kind: str) -> Response:
            return await self._session.send(method, path, body, content_type=kind)

        try:
            return await self._cowatch.contribute(self.brain, self._pairs, send), None
        except OmegaError as exc:
            _log.warning("co-watch pairs not contributed: %s", exc)
            return None, str(exc)

    def _next_push(self, creds: Credentials) -> tuple[PushRequest | None, bool]:
        """The batch in flight (resent as recorded), else a new one recorded before sending."""
        sync = self.brain.sync
        inflight = sync.inflight()
        if inflight is not None:
            try:
                return codec.decode(inflight.payload, expect=PushRequest), True
            except RemoteProtocolError:
                # Recorded by an older Omega in a frame this one no longer speaks: its
                # changes go back to the outbox and leave in a new batch.
                sync.abandon_batch(inflight.batch_id)
        if self._helper_key is not None and not self._positions:
            self._positions = CatalogOrder.positions(self.brain)
        report = next_report(self.brain, self._report_rng, self._helper_key, self._positions)
        plan = build_push(
            sync.pending(self.max_push_patterns),
            viewer_id=creds.viewer_id,
            codebook_id=CodebookLabel.current(self.brain),
            batch_id=new_batch_id(),
            max_patterns=self.max_push_patterns,
            max_bytes=self.max_push_bytes,
            reports=[report.report] if report is not None and report.report else [],
            shares=[report.shared] if report is not None and report.shared else [],
        )
        if plan is None:
            return None, False
        cursors = report.cursors() if report is not None else {}
        batch = InflightBatch(plan.request.batch_id, plan.payload)
        sync.begin_batch(batch, plan.entries, cursors)
        return plan.request, False

    def _sync_request(
        self,
        creds: Credentials,
        since: int,
        trust: ReleaseTrust,
        push: PushRequest | None = None,
    ) -> SyncRequest:
        wanted = None
        if not isinstance(self._table, NoCowatch):
            wanted = cowatch_cursor(self.brain.sync.cursor(COWATCH_CURSOR))
        pull = PullRequest(
            viewer_id=creds.viewer_id,
            since_version=since,
            max_bytes=self.max_pull_bytes,
            region=self.region,
            cowatch=wanted,
        )
        return SyncRequest(
            pull=pull,
            push=push,
            nonce=secrets.token_bytes(NONCE_BYTES),
            release_kids=trust.kids(),
        )

    async def _exchange(
        self, request: SyncRequest, trust: ReleaseTrust, *, batch_id: str | None
    ) -> tuple[SyncResponse, int, int]:
        """POST one sync request; the answer checked (seal, then content) before anything
        of it is used. Keys the answer's endorsements vouch for are pinned. Returns the
        answer and the request's and answer's sizes in bytes."""
        body = codec.encode(request)
        answer = await self._session.send("POST", "/api/omega/sync", body)
        learned = open_sealed(answer, request=body, trusted=trust.keys())
        reply = read_sync_reply(answer, batch_id=batch_id)
        if trust.learn(learned):
            await asyncio.to_thread(ReleasePins.save, self.brain, trust.pins())
        return reply, len(body), len(answer.body)

    def _apply(self, pull: PullResponse) -> None:
        self.brain.sync.apply_release(
            version=pull.version,
            patterns=pull.patterns,
            removed=pull.removed,
            trends=pull.trends,
            popular=pull.popular,
        )
        page = pull.cowatch
        if page is not None and page.rows and not isinstance(self._table, NoCowatch):
            rows = [(row.source, list(row.neighbours)) for row in page.rows]
            self._table.apply_cowatch(page.cursor.version, rows)
            cursor = f"{page.cursor.version}:{page.cursor.source}"
            self.brain.sync.set_cursors({COWATCH_CURSOR: cursor})

    def _step(self, name: str) -> None:
        if self._on_step is not None:
            self._on_step(name)

    # -- codebook ----------------------------------------------------------------------
    async def fetch_codebook(self) -> bool:
        """Adopt the server's codebook if it has one the brain lacks; True if adopted.
        The document must be sealed by a trusted release key, as releases are."""
        await self.credentials()
        trust = await self.release_trust()
        answer = await self._session.send("GET", "/api/omega/codebook", None, accept_missing=True)
        if answer.status == 404:
            return False
        self._positions = None  # the document may carry a new catalog order
        return await fetch_codebook(self.brain, answer, trust)

    # -- credentials and release keys ----------------------------------------------------
    @property
    def refreshes(self) -> int:
        """Token refreshes this client did (every sync and fetch together)."""
        return self._session.refreshes

    async def credentials(self) -> Credentials:
        """Stored credentials, registering this device on first use (once, however many
        calls race for it)."""
        return await self._session.credentials()

    async def release_trust(self) -> ReleaseTrust:
        """The release keys this device verifies answers with (see
        ``omega.sync._session.Session.release_trust``)."""
        return await self._session.release_trust()
