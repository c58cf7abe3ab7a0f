"""The constellation's storage interface. Backends: SQLite (embedded default), PostgreSQL.

The server keeps no per-viewer history: only each viewer's *current* shareable patterns
(the live set, needed to count distinct backers for consensus), pending contributions
until a federation round applies them, and the versioned releases it distributes.

Flow: ``ingest`` (push, idempotent per viewer+batch) → pending contributions →
``apply_pending`` (a worker leases rows no other worker sees, folds them into the live
set, deletes them; exactly once, even if the worker dies at any point) → the worker
reads ``live_patterns`` and computes a release → ``commit_release`` (atomic, optimistic
on the base version) → devices read ``release_delta`` since their version.

Popularity (OLH, ``omega.protocol.frequency``): a push's frequency reports are queued
with it (``pending_reports``, no viewer id) → a round folds them into per-catalog-item
support counts (``fold_reports``: counts saved and reports deleted in one transaction)
→ the estimated top titles travel in ``commit_release(popular=…)`` → ``release_delta``.
Two-server reports (``omega.protocol.shares``) queue the same way (``pending_shares``);
a round has the helper verify and aggregate them and folds the exact counts
(``fold_reports(queue="shares")``).

Attestation (``omega.protocol.attestation``): the manufacturer keys the operator trusts
(``add_manufacturer_key``, ``revoke_manufacturer_key``) and one row per attested device
(``register_device``): a device is one viewer however often it registers, bound to its
device key. Viewers of a revoked key (``revoked_viewers``) are left out of rounds, refused
new tokens, and their pushes are refused (``ingest``).
"""

from __future__ import annotations

import abc
import asyncio
import functools
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from anyio import to_thread

from omega.protocol.messages import (
    ConsolidatedPattern,
    FrequencyReport,
    ItemScore,
    Pattern,
    PushAck,
    PushRequest,
    SharedReport,
    Trend,
)
from omega.storage.cowatch import CowatchStore

__all__ = [
    "AttestedDevice",
    "Codebook",
    "LivePattern",
    "ManufacturerKey",
    "ReleaseDelta",
    "ReportQueue",
    "Storage",
    "StorageLoad",
    "StorageStats",
    "SupportCounts",
    "ViewerRecord",
]

#: Which queue ``fold_reports`` deletes from.
ReportQueue = Literal["reports", "shares"]


@dataclass(frozen=True, slots=True)
class ViewerRecord:
    viewer_id: str
    region: str
    device_model: str
    created_at: float
    client_version: str = "0.1.0"
    #: When the operator revoked the viewer (``revoke_viewer``); None in good standing.
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class ManufacturerKey:
    """A manufacturer public key the operator trusts to vouch for devices."""

    manufacturer_id: str
    key_id: str
    public_key: bytes  # raw Ed25519, 32 bytes
    created_at: float
    revoked_at: float | None = None
    #: Devices registered under this key (filled in by ``manufacturer_keys``).
    devices: int = 0


@dataclass(frozen=True, slots=True)
class AttestedDevice:
    """One attested registration: which device, under which manufacturer key, signed when
    and by which device key (raw Ed25519, the certificate's ``device_key``)."""

    manufacturer_id: str
    device_id: str
    key_id: str
    signed_at: float
    device_key: bytes


@dataclass(frozen=True, slots=True)
class Codebook:
    """Content cells: k-means centroids over the catalog's content embeddings (public data)."""

    codebook_id: str
    dim: int
    centroids_f16: bytes  # k * dim little-endian float16, row-major
    k: int
    #: The catalog's public item ids (the domain of popularity reports); may be empty.
    item_ids: tuple[str, ...] = ()
    #: Its place in the order of publications (set by the store, ignored by
    #: ``put_codebook``): each put is higher than every earlier one, so a device can tell
    #: a replayed older codebook from a newer one.
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class SupportCounts:
    """Per catalog item (codebook ``item_ids`` order), for one parameter set: the OLH
    support of ε-LDP reports, or (``buckets == 0``) the exact counts of two-server reports
    with the servers' noise, whose variance per item is ``noise_variance``."""

    codebook_id: str
    buckets: int
    epsilon: float
    reports: int
    support: bytes  # int64 little-endian, one per catalog item
    noise_variance: float = 0.0


@dataclass(frozen=True, slots=True)
class LivePattern:
    """One viewer's current version of one pattern."""

    viewer_id: str
    region: str
    codebook_id: str
    pattern: Pattern
    updated_at: float


@dataclass(frozen=True, slots=True)
class ReleaseDelta:
    """What changed in the consolidated knowledge since some version."""

    version: int
    patterns: list[ConsolidatedPattern] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    trends: list[Trend] = field(default_factory=list)
    #: The whole current popularity list (score > 0, best first, at most
    #: ``MAX_POPULAR_PER_PULL``) when it changed after since_version (up to ``version``);
    #: empty when it did not. Devices replace their list with it.
    popular: list[ItemScore] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StorageLoad:
    """How busy the backend's connections are now (read by ``/metrics``, no query run)."""

    #: Connections open, and those inside a transaction at this instant.
    connections: int
    in_use: int
    #: Writes queued for SQLite's single writer thread, not yet started (0 for PostgreSQL).
    write_queue: int = 0


@dataclass(frozen=True, slots=True)
class StorageStats:
    viewers: int
    pending_contributions: int
    live_patterns: int
    released_patterns: int
    version: int
    #: Which backend answered ("sqlite", "postgresql") and what it can do beyond the
    #: interface, e.g. ``("pgvector",)`` when codebook centroids live in a vector column.
    backend: str = ""
    capabilities: tuple[str, ...] = ()


class Storage(abc.ABC):
    """Every method is synchronous and safe to call from one thread per connection,
    except the ``*_async`` ones, which are awaited on an event loop."""

    #: Reads are short and never wait on a lock or the network, so an event loop may run
    #: them inline instead of paying a worker-thread hop (the SQLite backend).
    inline_reads: ClassVar[bool] = False

    @property
    @abc.abstractmethod
    def cowatch(self) -> CowatchStore:
        """The co-watch store on the same database (``omega.storage.cowatch``)."""

    # -- lifecycle -----------------------------------------------------------------
    @abc.abstractmethod
    def migrate(self) -> None:
        """Apply numbered migrations not yet recorded (idempotent)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    async def open_async(self) -> None:
        """Open what the ``*_async`` methods need on the running event loop (a server's
        lifespan calls it); by default nothing: they run the sync methods on threads."""
        return None

    async def close_async(self) -> None:
        """Close what :meth:`open_async` opened (on the same loop), before :meth:`close`."""
        return None

    # -- viewers ---------------------------------------------------------------------
    @abc.abstractmethod
    def create_viewer(self, viewer: ViewerRecord) -> None: ...

    @abc.abstractmethod
    def get_viewer(self, viewer_id: str) -> ViewerRecord | None: ...

    @abc.abstractmethod
    def list_viewers(self, *, after: str = "", limit: int) -> list[ViewerRecord]:
        """Up to ``limit`` viewers whose id sorts after ``after``, by id (a page)."""

    @abc.abstractmethod
    def revoke_viewer(self, viewer_id: str, *, now: float) -> ViewerRecord | None:
        """Mark the viewer revoked (once: a second call keeps the first time); None if
        unknown. A revoked viewer is one of ``revoked_viewers``: left out of rounds, its
        pushes refused (``RevokedError``)."""

    @abc.abstractmethod
    def use_refresh_token(self, jti: str, viewer_id: str, *, now: float) -> bool:
        """Mark a refresh token id as spent; False if it was already used (replay)."""

    # -- attestation -------------------------------------------------------------------
    @abc.abstractmethod
    def add_manufacturer_key(self, key: ManufacturerKey) -> bool:
        """Trust ``key``; True if it is new, False if this very key was already there.
        ``ConflictError`` if the names hold another key, or this key was revoked (a revoked
        key stays revoked: register a new key id)."""

    @abc.abstractmethod
    def manufacturer_keys(self) -> list[ManufacturerKey]:
        """Every key, revoked ones too, with its device count, by manufacturer and key id."""

    @abc.abstractmethod
    def get_manufacturer_key(self, manufacturer_id: str, key_id: str) -> ManufacturerKey | None: ...

    @abc.abstractmethod
    def revoke_manufacturer_key(
        self, manufacturer_id: str, key_id: str, *, now: float
    ) -> ManufacturerKey | None:
        """Mark the key revoked (once: a second call keeps the first time); None if unknown."""

    @abc.abstractmethod
    def register_device(self, device: AttestedDevice, viewer: ViewerRecord) -> str | None:
        """The viewer id of an attested device: the one it was given before (its row moves
        to ``device.key_id`` and ``device.signed_at``), else ``viewer`` is created for it.
        None, changing nothing, if ``device.signed_at`` is not later than the device's last
        registration (a replay). ``ConflictError``, changing nothing, if the device was
        registered with another device key (a certificate for its serial under a new key
        must not take over its viewer), unless :meth:`rekey_device` forgot that key."""

    @abc.abstractmethod
    def rekey_device(self, manufacturer_id: str, device_id: str) -> str | None:
        """Forget the device key an attested device registered with, so that its next
        registration, signed by whichever certified key, records a new one and keeps the
        viewer (the operator's decision: a TV whose key really changed). The device's
        viewer id, or None if no such device is registered."""

    @abc.abstractmethod
    def revoked_viewers(self) -> frozenset[str]:
        """Viewers the operator revoked, and those whose device was last attested under a
        revoked key."""

    @abc.abstractmethod
    def revoked_key_of(self, viewer_id: str) -> ManufacturerKey | None:
        """The revoked key ``viewer_id``'s device was last attested under, if it was."""

    # -- content -----------------------------------------------------------------------
    @abc.abstractmethod
    def put_codebook(self, codebook: Codebook) -> None: ...

    @abc.abstractmethod
    def get_codebook(self) -> Codebook | None: ...

    # -- ingestion -------------------------------------------------------------------
    @abc.abstractmethod
    def ingest(
        self, push: PushRequest, *, digest: str, region: str, ack: PushAck, now: float
    ) -> PushAck:
        """Record a push exactly once per (viewer, batch id).

        First time: store ``ack`` and queue the push's accepted patterns/removals as
        pending contributions, in one transaction, and return ``ack``. Same key and same
        ``digest`` again: change nothing, return the ack stored the first time. Same key,
        different digest: raise ``ConflictError``. A viewer whose device was last attested
        under a revoked manufacturer key: raise ``RevokedError``, storing nothing (its
        patterns, reports and shares alike).
        """

    async def ingest_async(
        self, push: PushRequest, *, digest: str, region: str, ack: PushAck, now: float
    ) -> PushAck:
        """:meth:`ingest` awaited on an event loop; by default on a worker thread.

        Once called, the push is stored even if the caller is cancelled (the device's
        retry then gets the stored ack, as after a lost answer).
        """
        call = functools.partial(self.ingest, push, digest=digest, region=region, ack=ack, now=now)
        return await asyncio.shield(asyncio.ensure_future(to_thread.run_sync(call)))

    # -- federation ------------------------------------------------------------------
    @abc.abstractmethod
    def apply_pending(self, *, worker_id: str, limit: int, now: float) -> int:
        """Lease up to ``limit`` pending contributions no other worker holds, fold them into
        the live set (upsert / delete by (viewer, pattern id)), delete them. Exactly once:
        a worker that dies at any point leaves each contribution either folded (and
        never folded again) or queued. Returns how many were applied."""

    @abc.abstractmethod
    def live_patterns(self, *, codebook_id: str, updated_after: float) -> list[LivePattern]: ...

    @abc.abstractmethod
    def prune_live(self, *, updated_before: float) -> int:
        """Forget live patterns (and removal markers) last updated before the cutoff.
        Returns how many live patterns were dropped."""

    @abc.abstractmethod
    def prune_live_quality(self, *, min_quality: float, abandonment: bool = False) -> int:
        """Forget live patterns whose quality is below ``min_quality`` (an operator's
        clean-up; rounds apply their own quality filter without deleting anything).
        Quality is the success rate of a positive pattern; of a behaviour pattern it is
        1 - success rate, or the rate itself with ``abandonment`` (when rounds read
        behaviour rates that way: ``FederationConfig.behaviour_rate``). Removal markers
        stay. Returns how many live patterns were dropped."""

    @abc.abstractmethod
    def prune_batches(self, *, created_before: float) -> int:
        """Forget idempotency records (viewer, batch id → ack) of pushes older than the
        cutoff, so the server keeps no push history beyond the retry window. A push retried
        after its record was pruned is treated as new. Returns how many were dropped."""

    @abc.abstractmethod
    def current_release(self) -> tuple[int, list[ConsolidatedPattern]]:
        """The latest version and every pattern live in it."""

    async def release_version_async(self) -> int:
        """:meth:`release_version` awaited on an event loop; by default on a worker thread."""
        return await to_thread.run_sync(self.release_version)

    @abc.abstractmethod
    def release_version(self) -> int:
        """The latest version alone (one row: cheap enough for every pull)."""

    @abc.abstractmethod
    def commit_release(
        self,
        *,
        base_version: int,
        upserted: list[ConsolidatedPattern],
        removed: list[str],
        trends: list[Trend],
        now: float,
        popular: list[ItemScore] | None = None,
    ) -> int | None:
        """Atomically publish version base_version + 1 (patterns carry that version).
        ``popular`` entries (score 0: left the list) are stamped with it too.
        Returns None, changing nothing, if the current version is no longer base_version."""

    @abc.abstractmethod
    def release_delta(self, *, since_version: int, limit: int) -> ReleaseDelta:
        """Up to ``limit`` patterns changed after ``since_version`` (ordered by version, then
        weight descending) and the ids removed after it, plus the current trends.

        ``ReleaseDelta.version`` is the highest version *completely* contained in the answer
        (== since_version if even the first version did not fit), so a device that stores
        it as its cursor never skips a change; re-sent patterns are idempotent upserts."""

    @abc.abstractmethod
    def current_trends(self) -> list[Trend]:
        """The latest release's trends (as ``release_delta`` carries them)."""

    # -- popularity --------------------------------------------------------------------
    @abc.abstractmethod
    def pending_reports(self, *, limit: int) -> list[tuple[int, FrequencyReport]]:
        """Up to ``limit`` queued reports, oldest first, with their sequence numbers."""

    @abc.abstractmethod
    def popularity_counts(self, *, codebook_id: str) -> list[SupportCounts]: ...

    @abc.abstractmethod
    def pending_shares(self, *, limit: int) -> list[tuple[int, SharedReport, str | None]]:
        """Up to ``limit`` queued two-server reports with their seqs and batch tags: the
        tagged ones first (a batch the helper may already have answered), then the
        oldest."""

    @abc.abstractmethod
    def tag_shares(self, *, seqs: list[int], batch: str) -> None:
        """Mark the queued reports ``seqs`` as the batch ``batch`` (durably)."""

    @abc.abstractmethod
    def fold_reports(
        self, *, seqs: list[int], counts: list[SupportCounts], queue: ReportQueue = "reports"
    ) -> bool:
        """Delete the queued reports ``seqs`` (from ``queue``) and save ``counts`` (which
        include them) in one transaction; False, changing nothing, if another worker
        folded any of them."""

    @abc.abstractmethod
    def current_popular(self) -> list[ItemScore]:
        """The released popularity list (score > 0), best first."""

    @abc.abstractmethod
    def stats(self) -> StorageStats: ...

    @abc.abstractmethod
    def load(self) -> StorageLoad:
        """The connections' state now, from memory: cheap, never blocks on the database."""
