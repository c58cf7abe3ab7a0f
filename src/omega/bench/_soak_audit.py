"""The soak's audit: what the devices had acknowledged, against what the server stored.

The server's tables alone cannot say whether a pattern version was stored twice: a
federation round folds the queue (``pending``) into the live set — one row per viewer
and pattern, its newest version — and deletes it, so after a round two copies of a
version look like one. So before any device syncs, :func:`install` adds an audit log to
the server's database: a trigger copying the (batch id, pattern id) of every row the
server queues into ``soak_log``, inside the push's own transaction — it commits, or is
lost, with the row, SIGKILL included — which rounds never touch.

:func:`audit` reads it back once the server has stopped, with the ledgers the soak
wrote (``load-ledger.msgpack``: the cheap devices', ``brains-ledger.msgpack``: what the
brains' transport saw acknowledged and what each brain says it shared) and checks:

- every acknowledged (batch, pattern) was queued exactly once: ``lost`` if never,
  ``duplicated`` for each extra copy; rows queued for no acknowledged batch are
  ``unexplained`` (those of a batch still unacknowledged at the end are counted apart);
- the newest acknowledged version of each (viewer, pattern) is the one the server holds,
  in the queue or folded into the live set (``latest_missing`` otherwise); a brain's
  shared patterns are each the newest version acknowledged (``shared_unacknowledged``);
- two-server reports: those in acknowledged pushes = counted by the servers + queued.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from omega.errors import RemoteProtocolError
from omega.protocol import codec
from omega.protocol.messages import Pattern, SyncRequest, SyncResponse
from omega.storage import open_storage
from omega.sync import Response, Transport

__all__ = [
    "BrainBatch",
    "BrainsLedger",
    "LedgerTransport",
    "audit",
    "install",
    "log_position",
    "popularity_queue",
]

META = "soak.json"
LOAD_LEDGER = "load-ledger.msgpack"
BRAINS_LEDGER = "brains-ledger.msgpack"
REMOVED = -1  # the "version" of a removal

_SQLITE_LOG = """
CREATE TABLE IF NOT EXISTS soak_log (
    n INTEGER PRIMARY KEY, batch_id TEXT NOT NULL, pattern_id TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS soak_log_pending AFTER INSERT ON pending BEGIN
    INSERT INTO soak_log (batch_id, pattern_id) VALUES (NEW.batch_id, NEW.pattern_id);
END;
"""
_POSTGRES_LOG = (
    "CREATE TABLE IF NOT EXISTS soak_log (n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " batch_id TEXT NOT NULL, pattern_id TEXT NOT NULL)",
    "CREATE OR REPLACE FUNCTION soak_log_pending() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN INSERT INTO soak_log (batch_id, pattern_id) VALUES (NEW.batch_id, NEW.pattern_id);"
    " RETURN NULL; END $$",
    "DROP TRIGGER IF EXISTS soak_log_pending ON pending",
    "CREATE TRIGGER soak_log_pending AFTER INSERT ON pending"
    " FOR EACH ROW EXECUTE FUNCTION soak_log_pending()",
)


# -- the server's side ------------------------------------------------------------------
@contextlib.contextmanager
def _connect(url: str) -> Iterator[Any]:
    """A DB-API connection to the storage ``url`` (the soak's: sqlite:/// or PostgreSQL)."""
    if url.startswith("sqlite:///"):
        conn: Any = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=60)
        conn.isolation_level = None  # autocommit, as psycopg below
    else:
        import psycopg

        conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def install(url: str) -> None:
    """Add the audit log to the (migrated) store at ``url``; see the module docstring."""
    with _connect(url) as conn:
        if url.startswith("sqlite:///"):
            conn.executescript(_SQLITE_LOG)
        else:
            for statement in _POSTGRES_LOG:
                conn.execute(statement)


def _one(conn: Any, sql: str) -> int:
    cursor = conn.execute(sql)
    (value,) = cursor.fetchone()
    return int(value or 0)


def log_position(url: str) -> int:
    """The audit log's last row: the soak audits only the rows after it."""
    with _connect(url) as conn:
        return _one(conn, "SELECT MAX(n) FROM soak_log")


def popularity_queue(url: str) -> tuple[int, int]:
    """Two-server reports waiting in the server's queue, and counted so far."""
    with _connect(url) as conn:
        return _shares(conn)


def _shares(conn: Any) -> tuple[int, int]:
    queued = _one(conn, "SELECT COUNT(*) FROM pending_shares")
    counted = _one(conn, "SELECT SUM(reports) FROM popularity_counts WHERE buckets = 0")
    return queued, counted


# -- the brains' side: what the server acknowledged ---------------------------------------
class BrainBatch(msgspec.Struct, frozen=True):
    """A push the server acknowledged to a brain: what it queued, as (pattern id, version)
    (``REMOVED`` for a removal), and its two-server reports."""

    viewer_id: str
    batch_id: str
    ops: list[tuple[str, int]]
    shares: int


class BrainsLedger(msgspec.Struct, frozen=True):
    batches: list[BrainBatch]  # in the order they were acknowledged
    #: Per brain: its viewer id and the (pattern id, version) of each pattern it shared.
    shared: list[tuple[str, list[tuple[str, int]]]]


class LedgerTransport:
    """The brains' transport: ``inner`` (real HTTP) does the I/O; each push answered 200
    with its acknowledgement is noted once, with what the server queued of it (the
    upserts it accepted, the removals it did not refuse)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.batches: dict[str, BrainBatch] = {}

    async def request(
        self, method: str, path: str, *, body: bytes | None, headers: Mapping[str, str]
    ) -> Response:
        answer = await self.inner.request(method, path, body=body, headers=headers)
        if path == "/api/omega/sync" and answer.status == 200 and body:
            self._note(body, answer.body)
        return answer

    def _note(self, sent: bytes, got: bytes) -> None:
        try:
            push = codec.decode(sent, expect=SyncRequest).push
            ack = codec.decode(got, expect=SyncResponse, max_bytes=1 << 22).ack
        except RemoteProtocolError:
            return  # the client refuses it too, and sends the batch again
        if push is None or ack is None or ack.batch_id != push.batch_id:
            return
        if push.batch_id in self.batches:
            return
        accepted = set(ack.accepted)
        refused = {r.pattern_id for r in ack.rejected}
        ops = [(p.id, p.version) for p in (*push.added, *push.updated) if p.id in accepted]
        ops += [(pid, REMOVED) for pid in push.removed if pid not in refused]
        self.batches[push.batch_id] = BrainBatch(
            push.viewer_id, push.batch_id, ops, len(push.shares)
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


# -- the audit ------------------------------------------------------------------------------
class _CheapDevice(msgspec.Struct, frozen=True):
    viewer_id: str
    patterns: list[str]
    acked: list[int]
    inflight: tuple[int, int] | None
    shares_acked: int
    rejected: int


@dataclass
class _Expected:
    """What the ledgers say was acknowledged, in the shapes the log check reads fast."""

    cheap: list[_CheapDevice]
    brains: BrainsLedger

    def __post_init__(self) -> None:
        self.bit = [{pid: i for i, pid in enumerate(d.patterns)} for d in self.cheap]
        self.brain_rows = {b.batch_id: {pid for pid, _ in b.ops} for b in self.brains.batches}

    def newest(self) -> dict[tuple[str, str], int]:
        """(viewer, pattern) → the newest version acknowledged (``REMOVED``: removed)."""
        newest: dict[tuple[str, str], int] = {}
        for d in self.cheap:
            # A cheap device's n-th push of a pattern is its version n.
            masks = np.array(d.acked, dtype=np.uint64)
            for i, pid in enumerate(d.patterns):
                version = int(((masks >> np.uint64(i)) & np.uint64(1)).sum())
                if version:
                    newest[(d.viewer_id, pid)] = version
        for b in self.brains.batches:
            for pid, version in b.ops:
                newest[(b.viewer_id, pid)] = version
        return newest


@dataclass
class _LogCheck:
    lost: int = 0
    duplicated: int = 0
    unexplained: int = 0
    in_flight_rows: int = 0
    rows: int = 0


def _cheap_batch(batch: str) -> tuple[int, int] | None:
    """(device, n) of a cheap device's batch id ``soak-<device>-<n>``, else None."""
    if not batch.startswith("soak-"):
        return None
    device, _, n = batch.removeprefix("soak-").partition("-")
    return int(device), int(n)


def _check_log(conn: Any, since: int, expected: _Expected) -> dict[str, _LogCheck]:
    """Every acknowledged (batch, pattern) against the rows the log says were queued."""
    cheap, brains = _LogCheck(), _LogCheck()
    seen: list[dict[int, int]] = [defaultdict(int) for _ in expected.cheap]
    brain_seen: Counter[tuple[str, str]] = Counter()
    cursor = conn.execute(
        f"SELECT batch_id, pattern_id FROM soak_log WHERE n > {int(since)} ORDER BY n"
    )
    while rows := cursor.fetchmany(10_000):
        for batch, pid in rows:
            where = _cheap_batch(batch)
            if where is None:
                brains.rows += 1
                known = pid in expected.brain_rows.get(batch, ())
                brain_seen[(batch, pid)] += 1
                brains.unexplained += not known
                brains.duplicated += known and brain_seen[(batch, pid)] > 1
                continue
            cheap.rows += 1
            device, n = where
            if device >= len(seen):
                cheap.unexplained += 1
                continue
            bit = 1 << expected.bit[device].get(pid, 64)  # 64: no pattern of its pool
            done = seen[device][n]
            cheap.duplicated += bool(done & bit)
            seen[device][n] = done | bit
    for device, d in enumerate(expected.cheap):
        for n, got in seen[device].items():
            owed = d.acked[n] if n < len(d.acked) else 0
            extra = (got & ~owed).bit_count()
            if n >= len(d.acked) and d.inflight is not None and d.inflight[0] == n:
                cheap.in_flight_rows += extra  # the server may hold it: it was unanswered
            else:
                cheap.unexplained += extra
        for n, owed in enumerate(d.acked):
            cheap.lost += (owed & ~seen[device].get(n, 0)).bit_count()
    for b in expected.brains.batches:
        brains.lost += sum(brain_seen[(b.batch_id, pid)] == 0 for pid, _ in b.ops)
    return {"cheap": cheap, "brains": brains}


def _queued(conn: Any, viewers: set[str]) -> dict[tuple[str, str], list[int]]:
    """The versions still in the server's queue, per (viewer, pattern) of ``viewers``."""
    decoder = msgspec.msgpack.Decoder(Pattern)
    queued: dict[tuple[str, str], list[int]] = defaultdict(list)
    cursor = conn.execute("SELECT viewer_id, pattern_id, body FROM pending ORDER BY seq")
    while rows := cursor.fetchmany(10_000):
        for viewer, pid, body in rows:
            if viewer in viewers:
                version = REMOVED if body is None else decoder.decode(bytes(body)).version
                queued[(viewer, pid)].append(version)
    return queued


def _live(url: str, codebook_id: str) -> dict[tuple[str, str], int]:
    """The live set: (viewer, pattern) → its version (patterns removed are absent)."""
    storage = open_storage(url)
    try:
        rows = storage.live_patterns(codebook_id=codebook_id, updated_after=0.0)
    finally:
        storage.close()
    return {(r.viewer_id, r.pattern.id): r.pattern.version for r in rows}


def audit(root: Path) -> dict[str, Any]:
    """Audit the stopped server's storage of a soak whose files are under ``root``."""
    meta = json.loads((root / META).read_text())
    url, since, codebook_id = meta["db_url"], meta["log_since"], meta["codebook_id"]
    expected = _Expected(
        msgspec.msgpack.decode((root / LOAD_LEDGER).read_bytes(), type=list[_CheapDevice]),
        msgspec.msgpack.decode((root / BRAINS_LEDGER).read_bytes(), type=BrainsLedger),
    )
    newest = expected.newest()
    viewers = {viewer for viewer, _ in newest}
    with _connect(url) as conn:
        checks = _check_log(conn, since, expected)
        queued = _queued(conn, viewers)
        shares_queued, shares_counted = _shares(conn)
    live = _live(url, codebook_id)
    brain_viewers = {b.viewer_id for b in expected.brains.batches}
    report: dict[str, Any] = {}
    for fleet, check in checks.items():
        keys = {k: v for k, v in newest.items() if (k[0] in brain_viewers) == (fleet == "brains")}
        missing = sum(
            v not in queued.get(k, ()) and live.get(k, REMOVED) != v for k, v in keys.items()
        )
        report[fleet] = {
            "rows_queued": check.rows,
            "lost": check.lost,
            "duplicated": check.duplicated,
            "unexplained": check.unexplained,
            "latest_checked": len(keys),
            "latest_missing": missing,
        }
    cheap = report["cheap"]
    cheap["batches_acknowledged"] = sum(len(d.acked) for d in expected.cheap)
    cheap["versions_acknowledged"] = sum(m.bit_count() for d in expected.cheap for m in d.acked)
    cheap["in_flight_at_end"] = sum(d.inflight is not None for d in expected.cheap)
    cheap["in_flight_rows_queued"] = checks["cheap"].in_flight_rows
    cheap["rejected"] = sum(d.rejected for d in expected.cheap)
    brains = report["brains"]
    brains["batches_acknowledged"] = len(expected.brains.batches)
    brains["versions_acknowledged"] = sum(len(b.ops) for b in expected.brains.batches)
    brains["patterns_shared"] = sum(len(v) for _, v in expected.brains.shared)
    brains["shared_unacknowledged"] = sum(
        newest.get((viewer, pid)) != version
        for viewer, versions in expected.brains.shared
        for pid, version in versions
    )
    sent = sum(d.shares_acked for d in expected.cheap)
    sent += sum(b.shares for b in expected.brains.batches)
    shares = {
        "sent": sent,
        "counted": shares_counted,
        "queued": shares_queued,
        "lost": sent - shares_counted - shares_queued,
    }
    lost = sum(r["lost"] + r["latest_missing"] for r in report.values())
    lost += brains["shared_unacknowledged"]
    return {
        "patterns_lost": lost,
        "patterns_duplicated": sum(r["duplicated"] for r in report.values()),
        "patterns_unexplained": sum(r["unexplained"] for r in report.values()),
        "cheap_devices": cheap,
        "brains": brains,
        "two_server_reports": shares,
    }
