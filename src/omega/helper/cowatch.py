"""The helper's co-watch desk: the anonymising shuffler between TVs and the constellation.

The helper is the only server that sees which attested TV sends a co-watch report, and
it cannot read one: the pair is sealed to the constellation and named only by a tag it
cannot invert (the tag comes from an OPRF whose second key only the constellation
holds). What it does, with its own SQLite tables beside the popularity ones:

- **OPRF, step one**: multiplies a TV's blinded points by its key ``k1``, at most
  ``per_epoch`` points per device per epoch (so nobody tries the pair domain through it);
  a point the device had evaluated this epoch is answered again free (a retried request
  whose answer was lost: it keeps a keyed hash of (device, epoch, point));
- **counts devices, not reports**: a device's request carries a :class:`DeviceProof`
  under a manufacturer key the helper trusts; each device may queue ``per_epoch`` reports
  per epoch, and never two of one tag — ever, across epochs (it keeps a keyed hash of
  (device, tag), not the pair of them, so its table lists no device's tags);
- **strips and shuffles**: queued reports carry no device; once ``min_batch`` wait *and*
  they come from at least ``min_devices`` distinct devices (a batch of one TV's reports
  would name its sender to a leader that watched who asked for OPRF points), the leader
  takes them in a random order (``take_batch``), and they are deleted when the
  leader acknowledges the batch. Until then the same batch is handed out again, so a
  leader that died mid-round loses nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from omega.clock import Clock, SystemClock
from omega.errors import AuthError, ConfigError, InputError
from omega.protocol import oprf
from omega.protocol.cowatch import SealedReport, check_sealed
from omega.protocol.cowatch_wire import (
    ALREADY_REPORTED,
    OprfRequest,
    OprfResponse,
    ReportBatch,
    ReportRequest,
    ReportResponse,
    verify_proof,
)

__all__ = ["CowatchConfig", "CowatchDesk", "OverBudget"]

OPRF_KEY_FILE = "cowatch-oprf.key"
#: The most reports a batch hands the leader.
MAX_BATCH = 5_000


class OverBudget(InputError):
    """A device asked for more than its per-epoch bound (HTTP 429)."""


@dataclass(frozen=True, slots=True)
class CowatchConfig:
    """``per_epoch``: reports (and OPRF points) per device per epoch of ``epoch_s``
    seconds; ``min_batch``: reports that must wait before the leader gets any, and
    ``min_devices``: distinct devices they must come from (the shuffle hides a report
    among the reports of at least that many TVs: one TV's epoch alone may exceed
    ``min_batch``); ``manufacturer_keys``: the makers the helper trusts, (manufacturer
    id, key id) → public key."""

    per_epoch: int = 128
    epoch_s: float = 7 * 86_400.0
    min_batch: int = 100
    min_devices: int = 10
    max_skew: float = 300.0
    manufacturer_keys: dict[tuple[str, str], Ed25519PublicKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.per_epoch <= 1_000:
            raise ConfigError("the co-watch per_epoch bound must be in 1..1000")
        if self.epoch_s < 60:
            raise ConfigError("a co-watch epoch is at least 60 seconds")
        if self.min_batch < 1:
            raise ConfigError("the co-watch min_batch must be ≥ 1")
        if self.min_devices < 1:
            raise ConfigError("the co-watch min_devices must be ≥ 1")


def _load_oprf_key(path: Path) -> bytes:
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(oprf.new_key())
    try:
        return oprf.check_key(path.read_bytes(), f"the helper's OPRF key {path}")
    except InputError as exc:
        raise ConfigError(str(exc)) from None


class _Connection(sqlite3.Connection):
    """A desk's connection (a subclass: the desk keeps weak references to close them)."""


class CowatchDesk:
    def __init__(
        self, data_dir: Path, secret: bytes, config: CowatchConfig, clock: Clock | None = None
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self._key = _load_oprf_key(data_dir / OPRF_KEY_FILE)
        self._mark_key = hmac.new(secret, b"omega cowatch marks", hashlib.sha256).digest()
        self._store = data_dir / "helper-cowatch.sqlite3"
        self._local = threading.local()
        # Every thread's connection, to close (weakly held: a thread that ends takes its
        # own with it); ``_generation`` moves on at close, so a thread opens a new one.
        self._opened: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._opened_lock = threading.Lock()
        self._generation = 0
        with self._db() as c:
            c.execute("PRAGMA journal_mode = WAL")  # kept by the file
            c.executescript(
                "CREATE TABLE IF NOT EXISTS cw_proofs (signature BLOB PRIMARY KEY, at REAL);"
                "CREATE TABLE IF NOT EXISTS cw_usage (device TEXT, epoch INTEGER, kind TEXT,"
                " used INTEGER NOT NULL, PRIMARY KEY (device, epoch, kind));"
                "CREATE TABLE IF NOT EXISTS cw_marks (mark BLOB PRIMARY KEY);"
                "CREATE TABLE IF NOT EXISTS cw_points (mark BLOB PRIMARY KEY, epoch INTEGER);"
                "CREATE TABLE IF NOT EXISTS cw_senders (mark BLOB PRIMARY KEY);"
                "CREATE TABLE IF NOT EXISTS cw_queue (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " tag BLOB NOT NULL, sealed BLOB NOT NULL, batch TEXT, rank BLOB);"
            )

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection to the desk's store, opened on first use and kept (a
        connection per request cost more CPU than the request's own queries) until
        :meth:`close`; a transaction an error left open is rolled back before anything
        else runs on it."""
        held: tuple[int, _Connection] | None = getattr(self._local, "held", None)
        if held is None or held[0] != self._generation:
            # Only this thread uses it; not checked, so that close() may close it.
            c = sqlite3.connect(
                self._store,
                timeout=30.0,
                isolation_level=None,
                check_same_thread=False,
                factory=_Connection,
            )
            with self._opened_lock:
                self._opened.add(c)
                held = self._local.held = (self._generation, c)
        c = held[1]
        try:
            yield c
        finally:
            if c.in_transaction:
                try:
                    c.execute("ROLLBACK")
                except sqlite3.Error:
                    # Unusable now: the next call opens another, and the error in flight
                    # (the one that left the transaction open) stays the one reported.
                    self._local.held = None
                    c.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection in a write transaction (``BEGIN IMMEDIATE``),
        committed when the block ends and rolled back when it raises (unless SQLite rolled
        it back itself, as it does when the disk fills: then its error is the one raised)."""
        with self._db() as c:
            c.execute("BEGIN IMMEDIATE")
            yield c
            c.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection, once no request is in flight (the helper
        stopped). The desk stays usable: a later call opens a new connection."""
        with self._opened_lock:
            opened = list(self._opened)
            self._opened.clear()
            self._generation += 1
        for c in opened:
            c.close()

    def epoch(self) -> int:
        return int(self.clock.now() // self.config.epoch_s)

    def _device(
        self, c: sqlite3.Connection, kind: str, request: OprfRequest | ReportRequest
    ) -> str:
        """The attested device behind ``request``. Each proof is accepted once: the helper
        keeps the signatures it saw while they are fresh (a replayed request is refused)."""
        now = self.clock.now()
        device = verify_proof(
            request.proof,
            kind,
            request,
            self.config.manufacturer_keys,
            now=now,
            max_skew=self.config.max_skew,
        )
        assert request.proof is not None  # verify_proof refuses a missing one
        c.execute("DELETE FROM cw_proofs WHERE at < ?", (now - 2 * self.config.max_skew,))
        seen = c.execute(
            "INSERT INTO cw_proofs (signature, at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (request.proof.signature, request.proof.signed_at),
        )
        if seen.rowcount == 0:
            raise AuthError("this request was already received (a replay)")
        return device

    def _charge(self, c: sqlite3.Connection, device: str, kind: str, n: int) -> int:
        """Charge ``n`` to the device's epoch; :class:`OverBudget` past the bound."""
        epoch = self.epoch()
        row = c.execute(
            "SELECT used FROM cw_usage WHERE device = ? AND epoch = ? AND kind = ?",
            (device, epoch, kind),
        ).fetchone()
        used = row[0] if row else 0
        bound = self.config.per_epoch
        if used + n > bound:
            raise OverBudget(
                f"a device sends at most {bound} co-watch {kind} per epoch of "
                f"{self.config.epoch_s:.0f} s; this one has {bound - used} left and asked {n}"
            )
        c.execute(
            "INSERT INTO cw_usage (device, epoch, kind, used) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (device, epoch, kind) DO UPDATE SET used = excluded.used",
            (device, epoch, kind, used + n),
        )
        return bound - used - n

    def evaluate(self, request: OprfRequest) -> OprfResponse:
        """Step one of the OPRF for an attested device, charged to its epoch."""
        with self._transaction() as c:
            device = self._device(c, "oprf", request)
            self._charge(c, device, "points", self._new_points(c, device, request.points))
            answer = OprfResponse(points=[oprf.evaluate(self._key, p) for p in request.points])
        return answer

    def _new_points(self, c: sqlite3.Connection, device: str, points: list[bytes]) -> int:
        """How many of ``points`` the device had not had evaluated this epoch (marked now;
        the marks of past epochs are forgotten)."""
        epoch = self.epoch()
        c.execute("DELETE FROM cw_points WHERE epoch < ?", (epoch,))
        prefix = f"{device}\0{epoch}\0".encode()
        marks = {hmac.new(self._mark_key, prefix + p, "sha256").digest() for p in points}
        done = c.executemany(
            "INSERT INTO cw_points (mark, epoch) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(m, epoch) for m in marks],
        )
        return done.rowcount

    def submit(self, request: ReportRequest) -> ReportResponse:
        """Queue an attested device's reports: each well-formed one whose tag this device
        never sent before (the rest are answered with why, and cost nothing)."""
        with self._transaction() as c:
            device = self._device(c, "reports", request)
            errors, fresh = self._screen(c, device, request.reports)
            remaining = self._charge(c, device, "reports", len(fresh))
            c.executemany("INSERT INTO cw_marks (mark) VALUES (?)", [(m,) for m, _ in fresh])
            c.executemany(
                "INSERT INTO cw_queue (tag, sealed) VALUES (?, ?)",
                [(r.tag, r.sealed) for _, r in fresh],
            )
            if fresh:  # a keyed hash of the sender, until the next batch is formed
                sender = hmac.new(self._mark_key, b"sender\0" + device.encode(), "sha256")
                c.execute(
                    "INSERT INTO cw_senders (mark) VALUES (?) ON CONFLICT DO NOTHING",
                    (sender.digest(),),
                )
        return ReportResponse(errors=errors, epoch=self.epoch(), remaining=remaining)

    def _screen(
        self, c: sqlite3.Connection, device: str, reports: list[SealedReport]
    ) -> tuple[list[str], list[tuple[bytes, SealedReport]]]:
        errors: list[str] = []
        fresh: list[tuple[bytes, SealedReport]] = []
        for report in reports:
            try:
                check_sealed(report)
            except InputError as exc:
                errors.append(str(exc))
                continue
            mark = hmac.new(self._mark_key, device.encode() + b"\0" + report.tag, "sha256").digest()
            seen = c.execute("SELECT 1 FROM cw_marks WHERE mark = ?", (mark,)).fetchone()
            if seen is not None or any(m == mark for m, _ in fresh):
                errors.append(ALREADY_REPORTED)
                continue
            errors.append("")
            fresh.append((mark, report))
        return errors, fresh

    def take_batch(self) -> ReportBatch:
        """The batch handed out and not yet acknowledged, else a new shuffled one of all
        waiting reports once ``min_batch`` wait from ``min_devices`` devices that sent
        since the last batch was formed; else an empty answer."""
        with self._transaction() as c:
            row = c.execute("SELECT batch FROM cw_queue WHERE batch IS NOT NULL LIMIT 1").fetchone()
            if row is None:
                waiting = c.execute("SELECT count(*) FROM cw_queue").fetchone()[0]
                senders = c.execute("SELECT count(*) FROM cw_senders").fetchone()[0]
                if waiting < self.config.min_batch or senders < self.config.min_devices:
                    return ReportBatch(batch_id="")
                c.execute("DELETE FROM cw_senders")
                row = (secrets.token_hex(16),)
                seqs = c.execute("SELECT seq FROM cw_queue ORDER BY seq LIMIT ?", (MAX_BATCH,))
                c.executemany(
                    "UPDATE cw_queue SET batch = ?, rank = ? WHERE seq = ?",
                    [(row[0], secrets.token_bytes(16), s) for (s,) in seqs.fetchall()],
                )
            rows = c.execute(
                "SELECT tag, sealed FROM cw_queue WHERE batch = ? ORDER BY rank", (row[0],)
            ).fetchall()
        reports = [SealedReport(tag=bytes(t), sealed=bytes(s)) for t, s in rows]
        return ReportBatch(batch_id=row[0], reports=reports)

    def ack(self, batch_id: str) -> int:
        """Forget an acknowledged batch; how many reports it held."""
        with self._db() as c:
            return c.execute("DELETE FROM cw_queue WHERE batch = ?", (batch_id,)).rowcount

    def waiting(self) -> int:
        with self._db() as c:
            n: int = c.execute("SELECT count(*) FROM cw_queue").fetchone()[0]
            return n
