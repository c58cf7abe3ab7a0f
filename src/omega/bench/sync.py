"""``omega bench sync``: wire sizes and codec speed for realistic push and pull deltas.

:func:`measure_sync` takes lists of real messages (for example, brain-produced pushes and
federation-produced pulls); :func:`run_sync_bench` feeds it seeded synthetic ones shaped
like what the brain and the federation round emit: hex ids, rates rounded to 4 places,
cells from a 256-cell codebook. ``seal`` times what signed releases cost: the server
sealing each ``/sync`` answer to its request, and the device checking the seal.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from omega.errors import InputError
from omega.protocol import CELLS_BY_TASK, signing
from omega.protocol.codec import decode, encode
from omega.protocol.messages import (
    ConsolidatedPattern,
    Message,
    Pattern,
    PatternContext,
    PullRequest,
    PullResponse,
    PushAck,
    PushRequest,
    SyncRequest,
    SyncResponse,
    TaskType,
    Trend,
)

__all__ = ["measure_sync", "run_sync_bench", "synthetic_pulls", "synthetic_pushes"]

_CODEBOOK = "minilm-k256-v1"
_CELLS = 256
_TASKS: tuple[TaskType, ...] = ("recommendation", "preference", "discovery", "behaviour")
_TASK_P = (0.6, 0.25, 0.08, 0.07)
_BUCKETS = ("morning", "afternoon", "evening", "night", "any")
_DAYS = ("weekday", "weekend", "any")
_REGIONS = ("global", "eu-west", "us-east", "apac")
#: A release key id as the server's ring makes them (its length is what a seal carries).
_KID = "k20260101T000000.000000000-0000"


def _hex(rng: np.random.Generator, nbytes: int) -> str:
    return rng.bytes(nbytes).hex()


def _shape(rng: np.random.Generator) -> tuple[TaskType, tuple[int, ...], PatternContext]:
    task = _TASKS[int(rng.choice(len(_TASKS), p=_TASK_P))]
    cells = tuple(int(c) for c in rng.integers(0, _CELLS, size=CELLS_BY_TASK[task]))
    context = PatternContext(
        time_bucket=_BUCKETS[int(rng.integers(len(_BUCKETS)))],  # type: ignore[arg-type]
        day_type=_DAYS[int(rng.integers(len(_DAYS)))],  # type: ignore[arg-type]
    )
    return task, cells, context


def _rate(rng: np.random.Generator, task: TaskType) -> float:
    """Pushable patterns succeed at ≥ 0.7; behaviour patterns record abandonment (low)."""
    good = float(np.clip(rng.beta(17, 3), 0.7, 1.0))
    return round(1.0 - good if task == "behaviour" else good, 4)


def synthetic_pushes(count: int, *, rng: np.random.Generator) -> list[PushRequest]:
    """Typical device deltas: 10–30 patterns (about a third updates), 0–4 removals."""
    pushes = []
    for _ in range(count):
        patterns = []
        for _ in range(int(rng.integers(10, 31))):
            task, cells, context = _shape(rng)
            patterns.append(
                Pattern(
                    id=_hex(rng, 8),
                    task=task,
                    cells=cells,
                    context=context,
                    success_rate=_rate(rng, task),
                    support=int(rng.integers(3, 61)),
                    version=int(rng.integers(1, 20)),
                )
            )
        n_updated = int(rng.binomial(len(patterns), 0.3))
        pushes.append(
            PushRequest(
                viewer_id=_hex(rng, 16),
                batch_id=_hex(rng, 16),
                codebook_id=_CODEBOOK,
                added=patterns[n_updated:],
                updated=patterns[:n_updated],
                removed=[_hex(rng, 8) for _ in range(int(rng.integers(0, 5)))],
            )
        )
    return pushes


def synthetic_pulls(count: int, *, rng: np.random.Generator) -> list[PullResponse]:
    """Consolidated deltas of the size a 5 KB budget allows: 40–80 patterns, 0–8 trends."""
    pulls = []
    for _ in range(count):
        release = int(rng.integers(100, 100_000))
        patterns = []
        for _ in range(int(rng.integers(40, 81))):
            task, cells, context = _shape(rng)
            viewers = int(min(1e6, 3 + rng.lognormal(3.0, 1.5)))
            patterns.append(
                ConsolidatedPattern(
                    id=_hex(rng, 10),
                    task=task,
                    cells=cells,
                    context=context,
                    success_rate=_rate(rng, task),
                    support=viewers * int(rng.integers(3, 40)),
                    viewers=viewers,
                    weight=round(float(rng.uniform(0.05, 1.0)), 6),
                    version=release - int(rng.integers(0, 50)),
                )
            )
        trends = [
            Trend(
                cell=int(rng.integers(0, _CELLS)),
                region=_REGIONS[int(rng.integers(len(_REGIONS)))],
                score=round(float(rng.gamma(2.0, 1.5)), 4),
                version=release,
            )
            for _ in range(int(rng.integers(0, 9)))
        ]
        pulls.append(
            PullResponse(
                version=release,
                patterns=patterns,
                removed=[_hex(rng, 10) for _ in range(int(rng.integers(0, 6)))],
                trends=trends,
                next_sync_after=round(float(rng.uniform(1800.0, 5400.0)), 1),
                more=bool(rng.random() < 0.1),
            )
        )
    return pulls


def _round_trips(pushes: Sequence[PushRequest], pulls: Sequence[PullResponse]) -> dict[str, Any]:
    """Pair each push with a pull into the messages one ``/sync`` round trip carries."""
    requests, responses = [], []
    for push, pull in zip(pushes, pulls, strict=False):
        nonce = bytes.fromhex(push.batch_id)[:16].ljust(16, b"\0")  # 16 bytes, as a device's
        pull_request = PullRequest(viewer_id=push.viewer_id, since_version=1)
        requests.append(SyncRequest(pull=pull_request, push=push, nonce=nonce, release_kids=[_KID]))
        accepted = [p.id for p in (*push.added, *push.updated)] + list(push.removed)
        ack = PushAck(batch_id=push.batch_id, accepted=accepted, server_version=pull.version)
        responses.append(SyncResponse(pull=pull, ack=ack))
    return {"sync_request": requests, "sync_response": responses}


def _kind_stats(
    messages: Sequence[Message], repeats: int
) -> tuple[dict[str, float], list[float], list[float]]:
    sizes = np.array([len(encode(m)) for m in messages], dtype=np.float64)
    enc: list[float] = []
    dec: list[float] = []
    for _ in range(repeats):
        for msg in messages:
            t0 = time.perf_counter_ns()
            frame = encode(msg)
            t1 = time.perf_counter_ns()
            decode(frame, expect=type(msg))
            t2 = time.perf_counter_ns()
            enc.append((t1 - t0) / 1e3)
            dec.append((t2 - t1) / 1e3)
    stats = {
        "count": len(messages),
        "bytes_median": float(np.median(sizes)),
        "bytes_p95": float(np.percentile(sizes, 95)),
        "bytes_max": float(sizes.max()),
        "encode_us_median": statistics.median(enc),
        "decode_us_median": statistics.median(dec),
    }
    return stats, enc, dec


def _seal_stats(
    requests: Sequence[Message], responses: Sequence[Message], repeats: int
) -> dict[str, float]:
    """Seal each answer frame to its request's frame, and check it as a device does."""
    key = Ed25519PrivateKey.generate()
    trusted = {_KID: signing.public_bytes(key)}
    pairs = [(encode(q), encode(r)) for q, r in zip(requests, responses, strict=True)]
    seal_us: list[float] = []
    verify_us: list[float] = []
    extra: list[int] = []
    for _ in range(repeats):
        for request, frame in pairs:
            t0 = time.perf_counter_ns()
            sealed = signing.seal(frame, request=signing.request_digest(request), kid=_KID, key=key)
            t1 = time.perf_counter_ns()
            signing.verify(sealed, request=signing.request_digest(request), trusted=trusted)
            t2 = time.perf_counter_ns()
            seal_us.append((t1 - t0) / 1e3)
            verify_us.append((t2 - t1) / 1e3)
            extra.append(len(sealed) - len(frame))
    return {
        "seal_us_median": statistics.median(seal_us),
        "verify_us_median": statistics.median(verify_us),
        "seal_bytes": float(np.median(extra)),
    }


def measure_sync(
    pushes: Sequence[PushRequest], pulls: Sequence[PullResponse], *, repeats: int = 3
) -> dict[str, Any]:
    """Encode and decode every message ``repeats`` times; sizes and median timings.

    Top-level figures cover pushes and pulls; ``kinds`` adds the combined ``/sync``
    request and response (each push paired with a pull); ``seal``: the median µs to seal
    one ``/sync`` answer (server) and to check it (device), and the bytes a seal adds.
    """
    if not pushes or not pulls:
        raise InputError("measure_sync needs at least one push and one pull")
    samples = {"push": list(pushes), "pull": list(pulls), **_round_trips(pushes, pulls)}
    kinds: dict[str, dict[str, float]] = {}
    encode_us: list[float] = []
    decode_us: list[float] = []
    for kind, messages in samples.items():
        kinds[kind], enc, dec = _kind_stats(messages, repeats)
        if kind in ("push", "pull"):
            encode_us += enc
            decode_us += dec
    seal = _seal_stats(samples["sync_request"], samples["sync_response"], repeats)
    pattern_counts = [len(p.added) + len(p.updated) for p in pushes]
    return {
        "pushes": len(pushes),
        "pulls": len(pulls),
        "push_bytes_median": kinds["push"]["bytes_median"],
        "push_bytes_p95": kinds["push"]["bytes_p95"],
        "pull_bytes_median": kinds["pull"]["bytes_median"],
        "pull_bytes_p95": kinds["pull"]["bytes_p95"],
        "encode_us_median": statistics.median(encode_us),
        "decode_us_median": statistics.median(decode_us),
        "patterns_per_push_median": float(np.median(pattern_counts)),
        "patterns_per_pull_median": float(np.median([len(p.patterns) for p in pulls])),
        "pulls_within_5kb": float(np.mean([len(encode(p)) <= 5120 for p in pulls])),
        "kinds": kinds,
        "seal": seal,
    }


def run_sync_bench(*, pushes: int = 1000, seed: int = 0, repeats: int = 3) -> dict[str, Any]:
    """Seeded synthetic deltas through :func:`measure_sync`: ``pushes`` pushes and as many pulls."""
    if pushes < 1 or repeats < 1:
        raise InputError("pushes and repeats must be at least 1")
    rng = np.random.default_rng(seed)
    result = measure_sync(
        synthetic_pushes(pushes, rng=rng), synthetic_pulls(pushes, rng=rng), repeats=repeats
    )
    return {"seed": seed, "repeats": repeats, **result}
