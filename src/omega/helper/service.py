"""The helper's work, without HTTP: open shares, answer the check, aggregate once.

The helper is the second of the two servers that count two-server popularity reports
(``omega.protocol.shares``); another operator runs it. It holds:

- an X25519 private key: devices seal their half of each report to its public key;
- a secret shared with the leader only: the key of the sketch check's random vectors
  (devices must not know it) and, derived from it, the leader's bearer token;
- a SQLite file of the ids of the reports it has checked (each is checked once, passed
  or not, so a leader can neither have one counted twice nor probe it with altered
  check values) and of the answers it gave per batch.

It never stores a share and answers nothing but check values and sums over batches of at
least ``min_batch`` reports, to which it adds its own discrete Laplace noise at
``noise_epsilon`` per report: a leader alone, even one that cheats, learns only noisy
aggregates.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from omega.errors import ConfigError, InputError
from omega.protocol.aggregation import (
    AggregateRequest,
    AggregateResponse,
    BatchTooSmall,
    HelperInfo,
    PrepareAnswer,
    PrepareRequest,
    PrepareResponse,
    auth_token,
    new_secret,
    parse_secret,
    verify_key,
)
from omega.protocol.dpf import PRIME
from omega.protocol.messages import SharedReport
from omega.protocol.noise import laplace_sampler, laplace_variance
from omega.protocol.shares import Sketch, open_helper_share, report_id, sketch, verify_share

__all__ = ["HelperConfig", "HelperService", "load_secret"]

#: Bytes of evaluated reports kept between ``prepare`` and ``aggregate`` (each is
#: 8 bytes per catalog title: ~78 KB on a 9,742-title catalog, ~3,400 reports).
EVALUATED_BYTES = 256 * 1024 * 1024

KEY_FILE = "helper-x25519.key"
SECRET_FILE = "aggregation-secret"
STORE_FILE = "helper.sqlite3"
MAX_ITEMS = 5_000
_answer_decoder = msgspec.msgpack.Decoder(AggregateResponse)


def load_secret(path: Path, *, create: bool) -> bytes:
    """The leader–helper secret (hex in a file), made on first use when ``create``."""
    if not path.exists():
        if not create:
            raise ConfigError(f"no aggregation secret at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(new_secret())
    return parse_secret(path.read_text(), source=str(path))


def _load_key(path: Path) -> X25519PrivateKey:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(32))
    raw = path.read_bytes()
    if len(raw) != 32:
        raise ConfigError(f"the helper key {path} must hold 32 raw bytes, has {len(raw)}")
    return X25519PrivateKey.from_private_bytes(raw)


@dataclass(frozen=True, slots=True)
class HelperConfig:
    min_batch: int = 100
    noise_epsilon: float = 4.0
    #: Seeds the noise (simulations that must reproduce, never in production); None:
    #: OpenDP's exact sampler from a cryptographic source (``omega.protocol.noise``).
    noise_seed: int | None = None

    def __post_init__(self) -> None:
        if self.min_batch < 1:
            raise ConfigError("the helper's min_batch must be ≥ 1")
        if not 0.0 <= self.noise_epsilon <= 20.0:
            raise ConfigError("the helper's noise_epsilon must be in [0, 20] (0: no noise)")


@dataclass(frozen=True, slots=True)
class _BatchCheck:
    """One aggregate request checked: per item whether it counts, the ids that pass, the
    ids spent by this check (passed or not) and the passing reports' summed shares."""

    accepted: list[bool]
    passed: list[bytes]
    checked: list[bytes]
    total: npt.NDArray[np.int64]


class HelperService:
    def __init__(
        self, private_key: X25519PrivateKey, secret: bytes, store: Path, config: HelperConfig
    ) -> None:
        self.private_key = private_key
        self.secret = secret
        self.verify_key = verify_key(secret)
        self.config = config
        self.store = store
        self.noise = laplace_sampler(config.noise_epsilon, seed=config.noise_seed)
        # Reports evaluated by ``prepare``, by (id, size), oldest first: ``aggregate`` of the
        # same batch reuses them instead of evaluating each report's key a second time.
        self._evaluated: OrderedDict[tuple[bytes, int], Sketch] = OrderedDict()
        self._evaluated_bytes = 0
        self._evaluated_lock = threading.Lock()
        with self._db() as c:
            c.execute("CREATE TABLE IF NOT EXISTS counted (id BLOB PRIMARY KEY, at REAL NOT NULL)")
            c.execute(
                "CREATE TABLE IF NOT EXISTS batches"
                " (id BLOB PRIMARY KEY, answer BLOB NOT NULL, at REAL NOT NULL)"
            )

    @classmethod
    def open(cls, data_dir: Path, config: HelperConfig | None = None) -> HelperService:
        """The helper kept in ``data_dir`` (key and secret are made on first start)."""
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot use {data_dir} as the helper's data directory: {exc}"
            ) from exc
        return cls(
            _load_key(data_dir / KEY_FILE),
            load_secret(data_dir / SECRET_FILE, create=True),
            data_dir / STORE_FILE,
            config or HelperConfig(),
        )

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        c = sqlite3.connect(self.store, timeout=30.0, isolation_level=None)
        try:
            c.execute("PRAGMA journal_mode = WAL")
            yield c
        finally:
            c.close()

    def info(self) -> HelperInfo:
        return HelperInfo(
            public_key=self.private_key.public_key().public_bytes_raw(),
            min_batch=self.config.min_batch,
            noise_epsilon=self.config.noise_epsilon,
        )

    def check_token(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), auth_token(self.secret).encode())

    @staticmethod
    def _check_size(size: int, count: int) -> None:
        if not 1 <= size <= 1 << 20:
            raise InputError(f"catalog size {size} is outside 1..{1 << 20}")
        if count > MAX_ITEMS:
            raise InputError(f"a request carries at most {MAX_ITEMS} reports, got {count}")

    def prepare(self, request: PrepareRequest) -> PrepareResponse:
        """The helper's share of ``d`` for each report: nothing the leader chooses."""
        self._check_size(request.size, len(request.reports))
        answers = []
        for report in request.reports:
            try:
                if report.size != request.size:
                    raise InputError(f"report over {report.size} titles, not {request.size}")
                s1 = self._sketch(report)
            except InputError as exc:
                answers.append(PrepareAnswer(error=str(exc)))
                continue
            self._keep(report, s1)
            answers.append(PrepareAnswer(d=s1.d))
        return PrepareResponse(answers=answers)

    def _sketch(self, report: SharedReport) -> Sketch:
        """This helper's sketch of ``report`` (:class:`InputError` if it does not open)."""
        share = open_helper_share(report, self.private_key)
        return sketch(1, report, share, self.verify_key)

    def _keep(self, report: SharedReport, s1: Sketch) -> None:
        """Keep an evaluation for ``aggregate``, dropping the oldest over the budget."""
        with self._evaluated_lock:
            key = (report_id(report), report.size)
            if key in self._evaluated:
                return
            self._evaluated[key] = s1
            self._evaluated_bytes += s1.y.nbytes
            while self._evaluated_bytes > EVALUATED_BYTES and self._evaluated:
                _, old = self._evaluated.popitem(last=False)
                self._evaluated_bytes -= old.y.nbytes

    def _take(self, report: SharedReport, rid: bytes) -> Sketch:
        """The evaluation ``prepare`` kept for this report, else a fresh one."""
        with self._evaluated_lock:
            kept = self._evaluated.pop((rid, report.size), None)
            if kept is not None:
                self._evaluated_bytes -= kept.y.nbytes
        return kept if kept is not None else self._sketch(report)

    def aggregate(self, request: AggregateRequest) -> AggregateResponse:
        """The helper's share of the histogram of the batch's valid, new reports.

        Idempotent per batch: the same set of reports gets the same answer (a leader that
        crashed after asking may ask again); a report counted in another batch is refused
        (``accepted`` False) and the rest still count."""
        self._check_size(request.size, len(request.items))
        rids = [report_id(item.report) for item in request.items]
        batch = hashlib.sha256(b"".join(sorted(rids))).digest()
        with self._db() as c:
            stored = c.execute("SELECT answer FROM batches WHERE id = ?", (batch,)).fetchone()
            if stored is not None:
                return _answer_decoder.decode(bytes(stored[0]))
            counted = self._counted(c, rids)
        return self._answer(batch, request.size, self._check(request, rids, counted))

    def _check(
        self, request: AggregateRequest, rids: list[bytes], counted: set[bytes]
    ) -> _BatchCheck:
        """Check each new report's share of ``z² − z*``; sum the ones that pass."""
        total = np.zeros(request.size, dtype=np.int64)
        accepted: list[bool] = []
        ids: list[bytes] = []
        checked: list[bytes] = []
        for item, rid in zip(request.items, rids, strict=True):
            ok = False
            fresh = rid not in counted and rid not in checked
            if fresh:
                checked.append(rid)  # one check per report, passed or not
            if item.report.size == request.size and fresh:
                try:
                    s1: Sketch | None = self._take(item.report, rid)
                except InputError:
                    s1 = None
                if s1 is not None:
                    ok = verify_share(item.w, s1.w((item.d + s1.d) % PRIME))
                    if ok:
                        total += s1.y
                        ids.append(rid)
            accepted.append(ok)
        return _BatchCheck(accepted=accepted, passed=ids, checked=checked, total=total)

    def _answer(self, batch: bytes, size: int, check: _BatchCheck) -> AggregateResponse:
        """Spend the checked reports and, for a batch big enough, keep and return the
        noisy answer: one transaction (:class:`BatchTooSmall` after spending them)."""
        with self._db() as c:
            c.execute("BEGIN IMMEDIATE")
            try:
                if self._counted(c, check.checked):
                    raise InputError("another request checked some of these reports meanwhile")
                now = time.time()
                # Spent even when the batch is refused: no report can be checked twice.
                c.executemany(
                    "INSERT INTO counted (id, at) VALUES (?, ?)", [(i, now) for i in check.checked]
                )
                if len(check.passed) < self.config.min_batch:
                    c.execute("COMMIT")
                    raise BatchTooSmall(
                        f"{len(check.passed)} valid new report(s); the helper aggregates batches "
                        f"of at least {self.config.min_batch}"
                    )
                noise = self.noise(size)
                answer = AggregateResponse(
                    accepted=check.accepted,
                    share=((check.total + noise) % PRIME).astype("<i8").tobytes(),
                    noise_variance=laplace_variance(self.config.noise_epsilon),
                )
                c.execute(
                    "INSERT INTO batches (id, answer, at) VALUES (?, ?, ?)",
                    (batch, msgspec.msgpack.encode(answer), now),
                )
                c.execute("COMMIT")
            except BatchTooSmall:
                raise
            except BaseException:
                c.execute("ROLLBACK")
                raise
        return answer

    @staticmethod
    def _counted(c: sqlite3.Connection, ids: list[bytes]) -> set[bytes]:
        found: set[bytes] = set()
        for chunk in _chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            rows = c.execute(f"SELECT id FROM counted WHERE id IN ({marks})", chunk)
            found.update(bytes(r[0]) for r in rows)
        return found


def _chunks(items: list[bytes], n: int) -> list[list[bytes]]:
    return [items[i : i + n] for i in range(0, len(items), n)]
