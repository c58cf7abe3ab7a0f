"""Builders for the records the storage contract tests push through a backend."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection

import msgspec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from omega.protocol.cowatch import make_report, seal_report
from omega.protocol.cowatch_wire import ReportBatch
from omega.protocol.messages import (
    ConsolidatedPattern,
    Pattern,
    PatternContext,
    PushAck,
    PushRequest,
    Rejection,
)
from omega.storage import Storage, ViewerRecord

CODEBOOK = "cb-1"

#: Opens another handle, with its own connections, on the test's database.
OpenStore = Callable[[], Storage]


def pattern(pid: str, *, cells: tuple[int, ...] = (1,), success: float = 0.8) -> Pattern:
    return Pattern(
        id=pid,
        task="preference" if len(cells) == 1 else "recommendation",
        cells=cells,
        context=PatternContext(time_bucket="evening", day_type="weekend"),
        success_rate=success,
        support=5,
    )


def push(
    viewer: str,
    batch: str,
    *,
    added: list[Pattern] | None = None,
    updated: list[Pattern] | None = None,
    removed: list[str] | None = None,
    codebook: str = CODEBOOK,
) -> PushRequest:
    return PushRequest(
        viewer_id=viewer,
        batch_id=batch,
        codebook_id=codebook,
        added=added or [],
        updated=updated or [],
        removed=removed or [],
    )


def digest(p: PushRequest) -> str:
    return hashlib.sha256(msgspec.msgpack.encode(p)).hexdigest()


def ack_all(p: PushRequest, *, reject: Collection[str] = (), version: int = 0) -> PushAck:
    ids = [x.id for x in (*p.added, *p.updated)]
    return PushAck(
        batch_id=p.batch_id,
        accepted=[i for i in ids if i not in reject],
        rejected=[Rejection(pattern_id=i, reason="quality") for i in sorted(reject)],
        server_version=version,
    )


def ingest(store: Storage, p: PushRequest, *, now: float = 100.0, region: str = "eu") -> PushAck:
    return store.ingest(p, digest=digest(p), region=region, ack=ack_all(p), now=now)


def viewer(store: Storage, vid: str, *, region: str = "eu") -> None:
    store.create_viewer(ViewerRecord(vid, region, "tv-9000", 1.0))


def released(
    pid: str, *, weight: float = 1.0, cells: tuple[int, ...] = (3,)
) -> ConsolidatedPattern:
    return ConsolidatedPattern(
        id=pid,
        task="preference",
        cells=cells,
        success_rate=0.9,
        support=30,
        viewers=4,
        weight=weight,
        version=0,
    )


class Batches:
    """The helper's side as the co-watch step reads it: the given shuffled batches, one
    a call, then none; what was acknowledged."""

    def __init__(self, *batches: ReportBatch) -> None:
        self.batches = list(reversed(batches))
        self.acked: list[str] = []

    def cowatch_batch(self) -> ReportBatch:
        return self.batches.pop() if self.batches else ReportBatch(batch_id="")

    def cowatch_ack(self, batch_id: str) -> None:
        self.acked.append(batch_id)


def sealed_batch(store: Storage, name: str, fleet: dict[tuple[int, int], int]) -> ReportBatch:
    """Each of ``fleet``'s (a, b) → TVs reports of its pair, sealed to the store's key:
    what STAR delivers (a hash of the pair stands in for the OPRF's output)."""
    key = X25519PrivateKey.from_private_bytes(store.cowatch.keys().hpke_key).public_key()
    reports = []
    for (a, b), tvs in fleet.items():
        r = hashlib.sha256(f"oprf {a} {b}".encode()).digest()
        reports += [seal_report(make_report(r, a, b, k=3), key) for _ in range(tvs)]
    return ReportBatch(batch_id=name, reports=reports)


def cowatch_rows(store: Storage) -> dict[int, list[tuple[int, int]]]:
    """The released co-watch rows that have neighbours, by source."""
    rows = store.cowatch.rows_after(version=0, source=-1, limit=100)
    return {row.source: row.neighbours for row in rows if row.neighbours}
