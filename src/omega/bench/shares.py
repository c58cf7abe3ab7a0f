"""``omega bench shares``: two-server popularity reports, timed for real.

Devices make ``reports`` reports of Zipf-distributed titles over a catalog of
``catalog`` titles (timed: the device's cost); the reports are queued in a real SQLite
constellation store (not timed); then the leader counts them with a real helper served
by uvicorn on loopback (timed end to end: evaluation, both check requests over HTTP,
aggregation and the fold; the fold adds no noise, so the counts are compared with the
titles sent). Apart, it times each server's noise for one batch's histogram (one value
per catalog title at ε = 4): OpenDP's exact sampler the servers use, and the seeded
numpy stream simulations use.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from omega.constellation.helper_client import HttpHelper
from omega.errors import InputError
from omega.federation.shared import SharedCounting, fold_shares, signed
from omega.helper.service import HelperConfig, HelperService
from omega.helper.thread import HelperThread
from omega.protocol.aggregation import auth_token
from omega.protocol.messages import PushAck, PushRequest, SharedReport
from omega.protocol.noise import LaplaceSampler, laplace_sampler
from omega.protocol.shares import make_shared_report
from omega.storage import Codebook, Storage, ViewerRecord, open_storage

__all__ = ["run_shares_bench"]


def run_shares_bench(*, reports: int = 2000, catalog: int = 9742, seed: int = 0) -> dict[str, Any]:
    if not 1 <= reports <= 5000 or not 2 <= catalog <= 1 << 20:
        raise InputError("--reports must be in 1..5000 and --catalog in 2..1048576")
    rng = np.random.default_rng(seed)
    titles = (rng.zipf(1.3, reports) - 1) % catalog
    with tempfile.TemporaryDirectory(prefix="omega-bench-shares-") as tmp:
        root = Path(tmp)
        service = HelperService.open(root / "helper", HelperConfig(min_batch=1, noise_epsilon=0))
        key = X25519PublicKey.from_public_bytes(service.info().public_key)
        made, per_report = _make_reports(titles, catalog, key)
        sizes = [len(msgspec.msgpack.encode(r)) for r in made]
        store = open_storage(f"sqlite:///{root / 'constellation.db'}")
        try:
            _queue(store, made, catalog)
            counted, fold_s = _count(store, service, batch=reports)
            (counts,) = store.popularity_counts(codebook_id="bench")
            support = signed(np.frombuffer(counts.support, dtype="<i8"))
        finally:
            store.close()
    per_report.sort()
    exact = bool(np.array_equal(support, np.bincount(titles, minlength=catalog)))
    return {
        "reports": reports,
        "catalog": catalog,
        "report_bytes_median": statistics.median(sizes),
        "make_ms_p50": round(1000 * per_report[len(per_report) // 2], 3),
        "make_ms_p99": round(1000 * per_report[int(0.99 * (len(per_report) - 1))], 3),
        "counted": counted,
        "fold_s": round(fold_s, 3),
        "fold_reports_per_s": round(counted / fold_s, 1) if fold_s > 0 else None,
        "counts_exact": exact,
        "noise_ms_exact_p50": _noise_ms(laplace_sampler(4.0), catalog),
        "noise_ms_seeded_p50": _noise_ms(laplace_sampler(4.0, seed=seed), catalog),
    }


def _noise_ms(sampler: LaplaceSampler, catalog: int, *, draws: int = 21) -> float:
    """Median milliseconds for one batch's noise: ``catalog`` values."""
    seconds = []
    for _ in range(draws):
        t = time.perf_counter()
        sampler(catalog)
        seconds.append(time.perf_counter() - t)
    return round(1000 * statistics.median(seconds), 3)


def _make_reports(
    titles: np.ndarray, catalog: int, key: X25519PublicKey
) -> tuple[list[SharedReport], list[float]]:
    """A device's report of each title, and the seconds each took to make."""
    made = []
    seconds = []
    for title in titles:
        t = time.perf_counter()
        made.append(make_shared_report(int(title), catalog, key))
        seconds.append(time.perf_counter() - t)
    return made, seconds


def _queue(store: Storage, made: list[SharedReport], catalog: int) -> None:
    """Queue the reports as one TV's pushes of four (not timed)."""
    ids = tuple(f"t{i}" for i in range(catalog))
    store.put_codebook(Codebook("bench", 2, bytes(8), 2, ids))
    store.create_viewer(ViewerRecord("bench-tv", "global", "tv", 0.0))
    for n in range(0, len(made), 4):
        push = PushRequest(
            viewer_id="bench-tv", batch_id=f"b{n}", codebook_id="bench", shares=made[n : n + 4]
        )
        ack = PushAck(batch_id=push.batch_id)
        store.ingest(push, digest=f"d{n}", region="global", ack=ack, now=0.0)


def _count(store: Storage, service: HelperService, *, batch: int) -> tuple[int, float]:
    """Count the queue with ``service`` served on loopback: reports counted, seconds."""
    codebook = store.get_codebook()
    assert codebook is not None
    with HelperThread(service) as helper:
        counting = SharedCounting(
            helper=HttpHelper(helper.url, auth_token(service.secret)),
            secret=service.secret,
            batch=batch,
            min_batch=1,
            noise_epsilon=0.0,
        )
        try:
            started = time.perf_counter()
            counted = fold_shares(store, codebook, counting)
            return counted, time.perf_counter() - started
        finally:
            counting.close()
