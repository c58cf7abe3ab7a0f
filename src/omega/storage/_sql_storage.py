"""The storage methods both backends share: each is one transaction of SQL written once,
run by the backend's :class:`~omega.storage._sql.Engine`.

A backend subclasses :class:`SQLStorage` with its engine and adds what only it does:
migrating, folding pending contributions into the live set, pruning idempotency
records, closing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Generic, TypeVar

from omega.errors import ConflictError, InputError, RevokedError, ViewerRevokedError
from omega.protocol.messages import (
    ConsolidatedPattern,
    FrequencyReport,
    ItemScore,
    PushAck,
    PushRequest,
    SharedReport,
    Trend,
)
from omega.storage import _sql_popularity as popularity
from omega.storage import _sql_viewers as viewers
from omega.storage._codec import (
    check_codebook,
    decode_ack,
    decode_consolidated,
    decode_pattern,
    encode,
    queue_table,
)
from omega.storage._pending import pending_rows
from omega.storage._release import check_limit, delta_cut, stamp_release
from omega.storage._sql import Engine, Tx
from omega.storage._sql_cowatch import SQLCowatchStore
from omega.storage._sql_rows import UPSERT_RELEASED, columns, pending_columns
from omega.storage.base import (
    AttestedDevice,
    Codebook,
    LivePattern,
    ManufacturerKey,
    ReleaseDelta,
    ReportQueue,
    Storage,
    StorageLoad,
    StorageStats,
    SupportCounts,
    ViewerRecord,
)
from omega.storage.cowatch import CowatchStore

__all__ = ["INSERT_BATCH", "RELEASE_VERSION", "SQLStorage", "write_codebook"]

E = TypeVar("E", bound=Engine)

#: The latest release's version (the one row of ``release_state``).
RELEASE_VERSION = "SELECT version FROM release_state WHERE id = 1"


class SQLStorage(Storage, Generic[E]):
    """``Storage`` over an engine ``E``; ``migrate``, ``close``, ``apply_pending`` and
    ``prune_batches`` are the backend's."""

    def __init__(self, db: E) -> None:
        self._db = db
        self._cowatch = SQLCowatchStore(db, standing=_require_pushing_viewer)

    @property
    def cowatch(self) -> CowatchStore:
        return self._cowatch

    # -- viewers -----------------------------------------------------------------------------
    def create_viewer(self, viewer: ViewerRecord) -> None:
        def write(tx: Tx) -> None:
            inserted = viewers.insert_viewer(tx, viewer)
            if inserted == 0 and viewers.viewer(tx, viewer.viewer_id) != viewer:
                raise ConflictError(f"viewer {viewer.viewer_id!r} is already registered")

        self._db.write(write)

    def get_viewer(self, viewer_id: str) -> ViewerRecord | None:
        with self._db.read() as tx:
            return viewers.viewer(tx, viewer_id)

    def list_viewers(self, *, after: str = "", limit: int) -> list[ViewerRecord]:
        with self._db.read() as tx:
            return viewers.list_viewers(tx, after, limit)

    def revoke_viewer(self, viewer_id: str, *, now: float) -> ViewerRecord | None:
        return self._db.write(lambda tx: viewers.revoke_viewer(tx, viewer_id, now))

    def use_refresh_token(self, jti: str, viewer_id: str, *, now: float) -> bool:
        def write(tx: Tx) -> bool:
            _require_viewer(tx, viewer_id)
            # PostgreSQL's key is (viewer_id, jti) (partitioned by viewer): a token id
            # presented for another viewer is refused by the NOT EXISTS.
            return (
                tx.run(
                    "INSERT INTO refresh_tokens (jti, viewer_id, used_at) SELECT ?, ?, ?"
                    " WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens WHERE jti = ?)"
                    " ON CONFLICT DO NOTHING",
                    (jti, viewer_id, now, jti),
                )
                == 1
            )

        return self._db.write(write)

    # -- attestation -------------------------------------------------------------------------
    def add_manufacturer_key(self, key: ManufacturerKey) -> bool:
        return self._db.write(lambda tx: viewers.add_key(tx, key))

    def manufacturer_keys(self) -> list[ManufacturerKey]:
        with self._db.read() as tx:
            return viewers.keys(tx)

    def get_manufacturer_key(self, manufacturer_id: str, key_id: str) -> ManufacturerKey | None:
        with self._db.read() as tx:
            return viewers.get_key(tx, manufacturer_id, key_id)

    def revoke_manufacturer_key(
        self, manufacturer_id: str, key_id: str, *, now: float
    ) -> ManufacturerKey | None:
        return self._db.write(lambda tx: viewers.revoke_key(tx, manufacturer_id, key_id, now))

    def register_device(self, device: AttestedDevice, viewer: ViewerRecord) -> str | None:
        try:
            return self._db.write(lambda tx: viewers.register_device(tx, device, viewer))
        except viewers.Raced:  # rolled back; the device's row is there now
            return self._db.write(lambda tx: viewers.register_device(tx, device, viewer))

    def rekey_device(self, manufacturer_id: str, device_id: str) -> str | None:
        return self._db.write(lambda tx: viewers.rekey_device(tx, manufacturer_id, device_id))

    def revoked_viewers(self) -> frozenset[str]:
        with self._db.read() as tx:
            return viewers.revoked_viewers(tx)

    def revoked_key_of(self, viewer_id: str) -> ManufacturerKey | None:
        with self._db.read() as tx:
            return viewers.revoked_key_of(tx, viewer_id)

    # -- content -----------------------------------------------------------------------------
    def put_codebook(self, codebook: Codebook) -> None:
        check_codebook(codebook)
        self._db.write(lambda tx: write_codebook(tx, codebook))

    def get_codebook(self) -> Codebook | None:
        with self._db.read() as tx:
            row = tx.row(
                "SELECT codebook_id, dim, centroids_f16, k, item_ids, put_seq FROM codebooks"
                " ORDER BY put_seq DESC LIMIT 1"
            )
        if row is None:
            return None
        ids = tuple(json.loads(row[4])) if row[4] else ()
        return Codebook(row[0], row[1], bytes(row[2]), row[3], ids, int(row[5]))

    # -- ingestion -----------------------------------------------------------------------------
    def ingest(
        self, push: PushRequest, *, digest: str, region: str, ack: PushAck, now: float
    ) -> PushAck:
        return self._db.write(
            self._ingest_job(push, digest=digest, region=region, ack=ack, now=now)
        )

    async def ingest_async(
        self, push: PushRequest, *, digest: str, region: str, ack: PushAck, now: float
    ) -> PushAck:
        job = self._ingest_job(push, digest=digest, region=region, ack=ack, now=now)
        return await self._db.write_async(job)

    def _ingest_job(
        self, push: PushRequest, *, digest: str, region: str, ack: PushAck, now: float
    ) -> Callable[[Tx], PushAck]:
        # Encoded before the transaction: on SQLite it holds the lock every push needs.
        dialect = self._db.dialect
        head = (push.viewer_id, push.batch_id, region, push.codebook_id)
        rows = [
            (*head, r.pattern_id, r.op, r.body, *pending_columns(r.pattern, dialect), now)
            for r in pending_rows(push, ack)
        ]
        stored = (push.viewer_id, push.batch_id, digest, encode(ack), now)

        def write(tx: Tx) -> PushAck:
            # One statement in the usual case: a viewer in good standing, a new batch. On
            # PostgreSQL a concurrent push of the same key waits here until the first one
            # commits.
            if tx.row(INSERT_BATCH, (*stored, push.viewer_id)) is None:
                _require_pushing_viewer(tx, push.viewer_id)  # raises if that was why
                found_digest, found_ack = tx.one(
                    "SELECT digest, ack FROM push_batches WHERE viewer_id = ? AND batch_id = ?",
                    (push.viewer_id, push.batch_id),
                )
                if found_digest != digest:
                    raise ConflictError(
                        f"batch {push.batch_id!r} of viewer {push.viewer_id!r} was already "
                        "pushed with a different payload"
                    )
                return decode_ack(bytes(found_ack))
            tx.many(
                "INSERT INTO pending (viewer_id, batch_id, region, codebook_id, pattern_id, op,"
                " body, task, cells, time_bucket, day_type, success_rate, support, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            popularity.insert_reports(tx, push.reports, now)
            popularity.insert_shares(tx, push.shares, now)
            return ack

        return write

    # -- federation ----------------------------------------------------------------------------
    def live_patterns(self, *, codebook_id: str, updated_after: float) -> list[LivePattern]:
        with self._db.read_live() as tx:
            rows = tx.rows(
                "SELECT viewer_id, region, codebook_id, body, updated_at FROM live"
                " WHERE NOT removed AND codebook_id = ? AND updated_at > ?"
                " ORDER BY viewer_id, pattern_id",
                (codebook_id, updated_after),
            )
        return [LivePattern(r[0], r[1], r[2], decode_pattern(r[3]), r[4]) for r in rows]

    def prune_live(self, *, updated_before: float) -> int:
        def write(tx: Tx) -> int:
            dropped = tx.rows(
                "DELETE FROM live WHERE updated_at < ? RETURNING removed", (updated_before,)
            )
            return sum(1 for (removed,) in dropped if not removed)

        return self._db.write_live(write)

    def prune_live_quality(self, *, min_quality: float, abandonment: bool = False) -> int:
        behaviour = "success_rate" if abandonment else "1 - success_rate"
        sql = (
            "DELETE FROM live WHERE NOT removed AND (CASE WHEN task = 'behaviour'"
            f" THEN {behaviour} ELSE success_rate END) < ?"
        )
        return self._db.write_live(lambda tx: tx.run(sql, (min_quality,)))

    def release_version(self) -> int:
        # Asked at every pull: one statement, without a transaction around it.
        return int(self._db.read_one(RELEASE_VERSION)[0])

    def current_release(self) -> tuple[int, list[ConsolidatedPattern]]:
        with self._db.read(snapshot=True) as tx:
            version = _version(tx)
            rows = tx.rows(
                "SELECT body FROM released WHERE NOT removed ORDER BY weight DESC, pattern_id"
            )
        return version, [decode_consolidated(r[0]) for r in rows]

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
        version = base_version + 1
        patterns, stamped = stamp_release(upserted, removed, trends, version)
        # Encoded before the transaction: on SQLite it holds the lock every push needs.
        dialect = self._db.dialect
        rows = [
            (p.id, version, p.weight, *columns(p, dialect), p.viewers, encode(p)) for p in patterns
        ]
        removed_ids = dialect.array(removed)

        def write(tx: Tx) -> int | None:
            # Of two workers on the same base, exactly one changes the row (PostgreSQL:
            # the row lock makes the other re-check and miss).
            if (
                tx.run(
                    "UPDATE release_state SET version = version + 1 WHERE id = 1 AND version = ?",
                    (base_version,),
                )
                != 1
            ):
                return None
            tx.many(UPSERT_RELEASED, rows)
            dropped = tx.run(
                "UPDATE released SET removed = TRUE, version = ?, body = NULL"
                f" WHERE pattern_id {dialect.any_of} AND NOT removed",
                (version, removed_ids),
            )
            tx.run("DELETE FROM trends")
            tx.many(
                "INSERT INTO trends (position, cell, region, score, version)"
                " VALUES (?, ?, ?, ?, ?)",
                [(i, t.cell, t.region, t.score, t.version) for i, t in enumerate(stamped)],
            )
            tx.run(
                "INSERT INTO releases (version, created_at, upserted, removed) VALUES (?, ?, ?, ?)",
                (version, now, len(patterns), dropped),
            )
            popularity.upsert_popular(tx, popular or [], version)
            return version

        return self._db.write(write)

    def release_delta(self, *, since_version: int, limit: int) -> ReleaseDelta:
        check_limit(limit)
        with self._db.read(snapshot=True) as tx:
            current = _version(tx)
            rows = tx.rows(
                "SELECT version, body FROM released WHERE NOT removed AND version > ?"
                " ORDER BY version, weight DESC, pattern_id LIMIT ?",
                (since_version, limit + 1),
            )
            n, version = delta_cut(
                [r[0] for r in rows], limit=limit, since=since_version, current=current
            )
            removed = tx.rows(
                "SELECT pattern_id FROM released WHERE removed AND version > ? AND version <= ?"
                " ORDER BY version, pattern_id",
                (since_version, version),
            )
            trends = _trends(tx)
            popular = popularity.popular_between(tx, since_version, version)
        return ReleaseDelta(
            version=version,
            patterns=[decode_consolidated(r[1]) for r in rows[:n]],
            removed=[r[0] for r in removed],
            trends=trends,
            popular=popular,
        )

    def current_trends(self) -> list[Trend]:
        with self._db.read() as tx:
            return _trends(tx)

    # -- popularity --------------------------------------------------------------------------
    def pending_reports(self, *, limit: int) -> list[tuple[int, FrequencyReport]]:
        check_limit(limit)
        with self._db.read() as tx:
            return popularity.pending_reports(tx, limit)

    def pending_shares(self, *, limit: int) -> list[tuple[int, SharedReport, str | None]]:
        check_limit(limit)
        with self._db.read() as tx:
            return popularity.pending_shares(tx, limit)

    def tag_shares(self, *, seqs: list[int], batch: str) -> None:
        self._db.write(lambda tx: popularity.tag_shares(tx, seqs, batch))

    def popularity_counts(self, *, codebook_id: str) -> list[SupportCounts]:
        with self._db.read() as tx:
            return popularity.counts(tx, codebook_id)

    def fold_reports(
        self, *, seqs: list[int], counts: list[SupportCounts], queue: ReportQueue = "reports"
    ) -> bool:
        table = queue_table(queue)
        try:
            self._db.write(lambda tx: popularity.fold(tx, table, seqs, counts))
        except popularity.Raced:
            return False
        return True

    def current_popular(self) -> list[ItemScore]:
        with self._db.read() as tx:
            return popularity.current(tx)

    # -- stats -------------------------------------------------------------------------------
    def stats(self) -> StorageStats:
        with self._db.read() as tx:
            viewers, pending, released, version = tx.one(
                "SELECT (SELECT count(*) FROM viewers), (SELECT count(*) FROM pending),"
                " (SELECT count(*) FROM released WHERE NOT removed),"
                " (SELECT version FROM release_state WHERE id = 1)"
            )
            capabilities = self._capabilities(tx)
        with self._db.read_live() as tx:
            (live,) = tx.one("SELECT count(*) FROM live WHERE NOT removed")
        return StorageStats(
            viewers,
            pending,
            live,
            released,
            version,
            backend=self._db.dialect.name,
            capabilities=capabilities,
        )

    def load(self) -> StorageLoad:
        return self._db.load()

    def _capabilities(self, tx: Tx) -> tuple[str, ...]:
        """What this backend can do beyond the interface (``StorageStats.capabilities``)."""
        return ()


def write_codebook(tx: Tx, codebook: Codebook) -> None:
    """Insert or replace ``codebook``; it becomes the latest one."""
    tx.run(
        "INSERT INTO codebooks (codebook_id, dim, k, centroids_f16, item_ids, put_seq)"
        f" VALUES (?, ?, ?, ?, ?, {tx.dialect.next_put_seq})"
        " ON CONFLICT (codebook_id) DO UPDATE SET dim = excluded.dim, k = excluded.k,"
        " centroids_f16 = excluded.centroids_f16, item_ids = excluded.item_ids,"
        " put_seq = excluded.put_seq",
        (
            codebook.codebook_id,
            codebook.dim,
            codebook.k,
            codebook.centroids_f16,
            json.dumps(list(codebook.item_ids)) if codebook.item_ids else None,
        ),
    )


def _version(tx: Tx) -> int:
    return int(tx.one(RELEASE_VERSION)[0])


def _trends(tx: Tx) -> list[Trend]:
    rows = tx.rows("SELECT cell, region, score, version FROM trends ORDER BY position")
    return [Trend(cell=r[0], region=r[1], score=r[2], version=r[3]) for r in rows]


#: A viewer, with the revoked manufacturer key its device was last attested under, if any.
_STANDING = (
    "viewers v LEFT JOIN devices d ON d.viewer_id = v.viewer_id"
    " LEFT JOIN manufacturer_keys k ON k.manufacturer_id = d.manufacturer_id"
    " AND k.key_id = d.key_id AND k.revoked_at IS NOT NULL"
    " WHERE v.viewer_id = ?"
)


#: A push's batch, stored only for a viewer in good standing (:data:`_STANDING` with no
#: revoked key, and not revoked by the operator) and only once per (viewer, batch): a row
#: back when it was stored.
INSERT_BATCH = (
    "INSERT INTO push_batches (viewer_id, batch_id, digest, ack, created_at)"
    f" SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM {_STANDING}"
    " AND k.manufacturer_id IS NULL AND v.revoked_at IS NULL)"
    " ON CONFLICT (viewer_id, batch_id) DO NOTHING RETURNING 1"
)


def _require_viewer(tx: Tx, viewer_id: str) -> None:
    if tx.row("SELECT 1 FROM viewers WHERE viewer_id = ?", (viewer_id,)) is None:
        raise InputError(f"viewer {viewer_id!r} is not registered")


def _require_pushing_viewer(tx: Tx, viewer_id: str) -> None:
    """A registered viewer neither revoked nor attested under a revoked manufacturer key
    (one query)."""
    columns = "k.manufacturer_id, k.key_id, v.revoked_at"
    row = tx.row(f"SELECT {columns} FROM {_STANDING}", (viewer_id,))
    if row is None:
        raise InputError(f"viewer {viewer_id!r} is not registered")
    if row[2] is not None:
        raise ViewerRevokedError("the operator revoked this viewer: its pushes are refused")
    if row[0] is not None:
        raise RevokedError(
            f"this device was attested under manufacturer key {row[0]}/{row[1]}, since "
            "revoked: its pushes are refused; register again with a certificate from a "
            "trusted key"
        )
