"""``omega bench sync-path``: the server CPU of one ``/sync``, in process, without a network.

The constellation's app runs on a temporary SQLite directory, a codebook is put and
``viewers`` devices register; then ``syncs`` requests shaped as ``omega bench server``'s
(10-30 of a device's patterns, a third of them updates, some removals, one ε-LDP report,
a pull) go through the app's ASGI door (``call_app``),
``in_flight`` at a time. A round's figure is ``time.process_time()`` over the syncs —
every thread's CPU, the SQLite writer's included — divided by their number. No sockets,
HTTP parsing or load generator share the process's CPU: what is measured is Omega's
route, guards, codec, storage and sealing, and the framework under them. No release is
made (federation is off), so every pull is answered with an empty delta: a pull's read
and fit are measured, not a release's bytes.

``digest`` hashes every decoded answer (its ack and pull, the pacing left out) in
request order per round: two builds of the code give the same digest exactly when they
answer the same bytes, which is how a cut to the sync path shows it changed nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from pydantic import SecretStr

from omega.bench.loadgen import catalog_item, long_tail_title
from omega.bench.serving import BenchError
from omega.bench.sync import synthetic_pushes
from omega.constellation import Settings, create_app
from omega.constellation.doors import call_app
from omega.errors import InputError
from omega.protocol import BINARY_MEDIA_TYPE, EMBEDDING_DIM, codec
from omega.protocol.frequency import DEFAULT_EPSILON, make_report
from omega.protocol.messages import (
    Pattern,
    PullRequest,
    PushRequest,
    Registration,
    RegistrationResponse,
    SyncRequest,
    SyncResponse,
)

__all__ = ["run_sync_path_bench"]

_CODEBOOK = "bench-codebook"
_CATALOG = 9000
_ADMIN = "sync-path-bench-admin-token"
_WARM_UP = 300


@dataclass
class _Device:
    """A registered device: its token, the patterns it may push and the ids it removes."""

    viewer_id: str
    token: str
    patterns: list[Pattern]
    removable: list[str]
    headers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.headers = {"content-type": BINARY_MEDIA_TYPE, "authorization": f"Bearer {self.token}"}


def run_sync_path_bench(
    *,
    viewers: int = 200,
    syncs: int = 1500,
    rounds: int = 3,
    in_flight: int = 16,
    seed: int = 0,
    digest: bool = False,
) -> dict[str, Any]:
    """Time ``rounds`` rounds of ``syncs`` syncs each (after a warm-up of 300)."""
    if viewers < 1 or syncs < 1 or rounds < 1 or in_flight < 1:
        raise InputError("--viewers, --syncs, --rounds and --in-flight must each be ≥ 1")
    with tempfile.TemporaryDirectory(prefix="omega-sync-path-") as tmp:
        return asyncio.run(
            _bench(
                Path(tmp),
                viewers=viewers,
                syncs=syncs,
                rounds=rounds,
                in_flight=in_flight,
                seed=seed,
                digest=digest,
            )
        )


async def _bench(
    tmp: Path, *, viewers: int, syncs: int, rounds: int, in_flight: int, seed: int, digest: bool
) -> dict[str, Any]:
    settings = Settings(
        data_dir=tmp,
        admin_token=SecretStr(_ADMIN),
        federation_interval=0,
        allow_unattested=True,
        rate_limit=10**9,
        registration_rate_limit=0,
        gc_freeze=True,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        rng = np.random.default_rng(seed)
        await _put_codebook(app, rng)
        devices = await _register(app, viewers, rng)
        requests = random.Random(seed + 1)
        await _round(app, devices, _WARM_UP, requests, in_flight, answers=None)
        ms: list[float] = []
        hashes: list[str] = []
        for _ in range(rounds):
            answers: list[bytes] | None = [] if digest else None
            ms.append(await _round(app, devices, syncs, requests, in_flight, answers=answers))
            if answers is not None:
                hashes.append(hashlib.sha256(b"".join(answers)).hexdigest())
    result: dict[str, Any] = {
        "viewers": viewers,
        "syncs_per_round": syncs,
        "in_flight": in_flight,
        "ms_per_sync": [round(m, 4) for m in ms],
        "min_ms": round(min(ms), 4),
        "median_ms": round(statistics.median(ms), 4),
        "syncs_per_cpu_second": round(1000 / min(ms)),
    }
    if digest:
        result["digest"] = hashlib.sha256("".join(hashes).encode()).hexdigest()
    return result


async def _put_codebook(app: Any, rng: np.random.Generator) -> None:
    centroids = rng.normal(size=(256, EMBEDDING_DIM))
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    document = {
        "codebook_id": _CODEBOOK,
        "dim": EMBEDDING_DIM,
        "k": 256,
        "centroids_f16": centroids.astype("<f2").tobytes(),
        "item_ids": [catalog_item(i) for i in range(_CATALOG)],
    }
    put = await call_app(
        app,
        "POST",
        "/api/omega/codebook",
        body=msgspec.json.encode(document),
        headers={"content-type": "application/json", "authorization": f"Bearer {_ADMIN}"},
    )
    if put.status != 201:
        raise BenchError(f"the codebook was refused ({put.status}): {put.body[:200]!r}")


async def _register(app: Any, viewers: int, rng: np.random.Generator) -> list[_Device]:
    templates = synthetic_pushes(2 * viewers, rng=rng)
    devices = []
    for i in range(viewers):
        made = await call_app(
            app,
            "POST",
            "/api/omega/viewers",
            headers={"content-type": BINARY_MEDIA_TYPE},
            body=codec.encode(Registration(device_model="bench-tv", region="global")),
            client=("10.0.0.1", 1),
        )
        if made.status != 201:
            raise BenchError(f"a registration was refused ({made.status}): {made.body[:200]!r}")
        registered = codec.decode(made.body, expect=RegistrationResponse)
        first, second = templates[2 * i], templates[2 * i + 1]
        patterns = [*first.added, *first.updated, *second.added, *second.updated]
        devices.append(
            _Device(registered.viewer_id, registered.access_token, patterns, list(first.removed))
        )
    return devices


def _request(device: _Device, rng: random.Random) -> bytes:
    chosen = rng.sample(device.patterns, min(len(device.patterns), rng.randint(10, 30)))
    added = len(chosen) // 3 * 2
    title = long_tail_title(_CATALOG, rng)
    push = PushRequest(
        viewer_id=device.viewer_id,
        batch_id=f"{rng.getrandbits(128):032x}",
        codebook_id=_CODEBOOK,
        added=chosen[:added],
        updated=chosen[added:],
        removed=device.removable[: rng.randint(0, len(device.removable))],
        reports=[make_report(title, DEFAULT_EPSILON, rng)],
    )
    pull = PullRequest(viewer_id=device.viewer_id, max_bytes=5120)
    return codec.encode(SyncRequest(pull=pull, push=push))


async def _round(
    app: Any,
    devices: Sequence[_Device],
    syncs: int,
    rng: random.Random,
    in_flight: int,
    *,
    answers: list[bytes] | None,
) -> float:
    """CPU ms per sync over ``syncs`` syncs (the requests are built before the clock)."""
    chosen = [devices[k % len(devices)] for k in range(syncs)]
    bodies = [(device, _request(device, rng)) for device in chosen]
    got: list[tuple[int, bytes]] = []
    queue = iter(enumerate(bodies))

    async def lane() -> None:
        for k, (device, body) in queue:
            answer = await call_app(
                app,
                "POST",
                "/api/omega/sync",
                headers=device.headers,
                body=body,
                client=("10.0.0.2", 2),
            )
            if answer.status != 200:
                raise BenchError(f"a sync was refused ({answer.status}): {answer.body[:300]!r}")
            if answers is not None:
                got.append((k, answer.body))

    started = time.process_time()
    await asyncio.gather(*(lane() for _ in range(in_flight)))
    spent = time.process_time() - started
    if answers is not None:
        for _, body in sorted(got):
            answers.append(_canonical(body))
    return spent / syncs * 1000


def _canonical(frame: bytes) -> bytes:
    """An answer's ack and pull as bytes, without the pacing (the one field with a clock)."""
    answer = codec.decode(frame, expect=SyncResponse, max_bytes=1 << 22)
    if answer.ack is None:
        raise BenchError("a sync with a push was answered without an ack")
    pull = msgspec.structs.replace(answer.pull, next_sync_after=0.0)
    return codec.canonical(answer.ack) + codec.canonical(pull)
