"""Local differential privacy frequency estimation: Optimal Local Hashing (OLH).

How popular each catalog title is, learned without any device naming a title. The
catalog's item ids are public (the constellation publishes the catalog), so they are the
domain. A device that started title ``x`` draws a fresh random seed, hashes ``x`` into
``g = round(e^ε) + 1`` buckets with a seeded universal hash, and sends the true bucket
with probability ``p = e^ε / (e^ε + g − 1)``, otherwise one of the other ``g − 1``
buckets uniformly. The report ``(seed, value, g, ε)`` is ε-locally differentially
private: for any two titles and any report, the likelihood ratio is at most ``e^ε``.
About ``catalog / g`` titles hash to any bucket, so a report never points at one title.

The server counts, per title, the reports whose bucket matches the title's hash under
the report's seed (the *support*), and unbiasedly estimates the number of devices that
reported it: ``f = (support − n/g) / (p − 1/g)``. The variance per report is about
``4 e^ε / (e^ε − 1)^2``, so small ε needs many reports (millions of TVs, not hundreds).

Pure functions, no I/O: the device side (:func:`make_report`) and the server side
(:func:`support_counts`, :func:`estimate`) share the same hash.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from hashlib import blake2b

import numpy as np
import numpy.typing as npt

from omega.errors import ConfigError
from omega.protocol.messages import FrequencyReport

__all__ = [
    "DEFAULT_EPSILON",
    "PRIME",
    "bucket_count",
    "estimate",
    "hash_items",
    "keep_probability",
    "make_report",
    "seed_params",
    "support_counts",
]

#: The universal hash works modulo this prime (2^31 − 1): a, b, x < 2^31 keep a·x + b
#: inside int64.
PRIME = 2_147_483_647
DEFAULT_EPSILON = 8.0
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def hash_item(item_id: str) -> int:
    """A title's position in the hash domain [0, PRIME)."""
    digest = blake2b(item_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % PRIME


def hash_items(item_ids: Sequence[str]) -> I64:
    """:func:`hash_item` for a whole catalog, as an int64 array."""
    return np.fromiter((hash_item(i) for i in item_ids), dtype=np.int64, count=len(item_ids))


def seed_params(seed: int) -> tuple[int, int]:
    """The hash ``h(x) = ((a·x + b) mod PRIME) mod g`` a report's seed selects."""
    raw = blake2b(seed.to_bytes(8, "little"), digest_size=16, person=b"omega-olh").digest()
    a = 1 + int.from_bytes(raw[:8], "little") % (PRIME - 1)
    b = int.from_bytes(raw[8:], "little") % PRIME
    return a, b


def bucket_count(epsilon: float) -> int:
    """OLH's optimal number of buckets, ``round(e^ε) + 1``."""
    return round(math.exp(epsilon)) + 1


def keep_probability(epsilon: float, buckets: int) -> float:
    """``p``: the chance a report carries its title's true bucket."""
    e = math.exp(epsilon)
    return e / (e + buckets - 1)


def make_report(item_id: str, epsilon: float, rng: random.Random) -> FrequencyReport:
    """A device's ε-LDP report of one title (use ``random.SystemRandom`` on devices)."""
    if not (0.0 < epsilon <= 20.0):
        raise ConfigError(f"report epsilon must be in (0, 20], got {epsilon!r}")
    buckets = bucket_count(epsilon)
    seed = rng.getrandbits(63)
    a, b = seed_params(seed)
    true = ((a * hash_item(item_id) + b) % PRIME) % buckets
    if rng.random() < keep_probability(epsilon, buckets):
        value = true
    else:
        value = rng.randrange(buckets - 1)
        value += value >= true  # uniform among the other g − 1 buckets
    return FrequencyReport(seed=seed, value=value, buckets=buckets, epsilon=epsilon)


def support_counts(hashes: I64, reports: Iterable[FrequencyReport]) -> I64:
    """Per title (one entry per ``hashes`` element): how many reports its bucket matches."""
    support = np.zeros(len(hashes), dtype=np.int64)
    for report in reports:
        a, b = seed_params(report.seed)
        buckets = (hashes * a + b) % PRIME % report.buckets
        support += buckets == report.value
    return support


def estimate(support: I64, reports: int, *, epsilon: float, buckets: int) -> F64:
    """Unbiased estimates of how many of ``reports`` named each title (may be < 0)."""
    p = keep_probability(epsilon, buckets)
    return (support.astype(np.float64) - reports / buckets) / (p - 1.0 / buckets)


def estimate_variance(reports: int, *, epsilon: float, buckets: int) -> float:
    """The variance of :func:`estimate` for a title nobody named (the noise floor):
    ``n·q(1−q)/(p−q)²`` with ``q = 1/buckets`` (Wang et al., USENIX Security 2017, OLH)."""
    p = keep_probability(epsilon, buckets)
    q = 1.0 / buckets
    return reports * q * (1.0 - q) / (p - q) ** 2
