"""Builders for the records the storage contract tests push through a backend."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection

import msgspec

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
