"""A round's co-watch step: take the helper's shuffled batch, open it, read the pairs that
reached the threshold, release per-title neighbours (``docs/cowatch.md``).

The constellation opens each report's HPKE layer (its X25519 key) and stores the point
under its tag; a tag's pair is read only once ``threshold`` points with distinct ``x``
lie on one polynomial whose secret opens the pair's ciphertext. A read tag keeps its
secret, so every later point is checked against the polynomial: a forged point neither
counts nor hides the honest ones. The count released is the number of distinct points
on the polynomial — one per attested TV, since the helper lets a TV send a tag once.

With central DP on (``CowatchCounting.privacy``) a batch's fold releases nothing and
counts as unreleased (``CowatchStore.unreleased_folds``): once a round has folded its
batches, :func:`release_owed` re-releases every row from noisy counts
(``omega.federation.cowatch_dp``) while any fold is unreleased, this round's or one an
earlier round left when it failed before its release — checked again inside the
release's transaction, so two rounds at once make one release (:func:`release_private`
releases unconditionally).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from omega.errors import ConfigError, InputError
from omega.federation.cowatch_dp import CowatchPrivacy, noisy_counts
from omega.protocol.cowatch import Share, on_polynomial, open_report, quantise, recover
from omega.protocol.cowatch_wire import ReportBatch
from omega.storage.base import Storage
from omega.storage.cowatch import (
    CowatchFold,
    PrivacySpend,
    PrivateRelease,
    Resolve,
    StoredPair,
)

__all__ = [
    "CowatchCounting",
    "CowatchSource",
    "CowatchStep",
    "Ranking",
    "fold_cowatch",
    "release_owed",
    "release_private",
]

log = logging.getLogger("omega.federation")


class CowatchSource(Protocol):
    """The helper as the co-watch step sees it (``omega.constellation`` reaches it over
    HTTP): a shuffled batch, handed out again until acknowledged."""

    def cowatch_batch(self) -> ReportBatch: ...

    def cowatch_ack(self, batch_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class CowatchCounting:
    """The helper to take batches from, the threshold k, the neighbours kept per title,
    and central DP on the released counts (None: off, the default)."""

    source: CowatchSource
    threshold: int = 3
    top: int = 20
    privacy: CowatchPrivacy | None = None
    #: The spread rule in the release (0: off): see :class:`Ranking`.
    spread: float = 0.0

    def __post_init__(self) -> None:
        if self.threshold < 2:
            raise ConfigError("the co-watch threshold must be at least 2 TVs")
        if not 1 <= self.top <= 200:
            raise ConfigError("the co-watch neighbours per title must be in 1..200")
        if self.spread < 0:
            raise ConfigError("the co-watch spread must be ≥ 0 (0: off)")

    @property
    def ranking(self) -> Ranking:
        return Ranking(self.top, self.spread)


@dataclass(frozen=True, slots=True)
class CowatchStep:
    """What one batch did: reports received, refused (did not open), and the fold."""

    received: int
    refused: int
    fold: CowatchFold | None


def _resolver(k: int) -> Resolve:
    def resolve(tag: bytes, shares: list[Share], known: StoredPair | None) -> StoredPair | None:
        if known is not None:
            tvs = len(on_polynomial(known.secret, k, shares))
            return StoredPair(known.a, known.b, known.secret, tvs)
        found = recover(tag, shares, k=k)
        if found is None or len(found.xs) < k:
            return None
        return StoredPair(found.a, found.b, found.secret, len(found.xs))

    return resolve


@dataclass(frozen=True, slots=True)
class Ranking:
    """A source's released row: its ``top`` best-backed neighbours, counts quantised.

    ``spread`` > 0 applies the brains' spread rule (``omega.brain._cowatch_spread``)
    where the table is made: a pair backed by more than ``spread`` × its neighbour's own
    best count as a source is left out before the ``top`` bound. A coalition's forged
    pairs point the most watched titles at a title nobody goes on from; in the brain
    the rule dropped them, yet each had already taken an honest neighbour's place in a
    bounded row and re-released that row whenever its count climbed (docs/cowatch.md).
    Left out here, a forged pair takes no place and its climbing count changes its own
    row no more. The best counts are over every read pair, left out or not: a forged
    pair still raises the best of the popular title it starts from, so rows pointing at
    that title admit more honest pairs into it, and re-rank when it rises. A brain with
    the rule on takes its best counts from the rows it receives, without the forged
    pairs, and may drop some of those honest pairs again."""

    top: int
    spread: float = 0.0

    @property
    def follows(self) -> bool:
        return self.spread > 0

    @property
    def policy(self) -> str:
        return f"top {self.top}, spread {self.spread:g}"

    def __call__(self, pairs: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
        if self.spread > 0:
            pairs = [p for p in pairs if p[1] <= self.spread * p[2]]
        best = sorted(pairs, key=lambda p: (-p[1], p[0]))[: self.top]
        return [(b, quantise(tvs)) for b, tvs, _ in best]


def fold_cowatch(storage: Storage, counting: CowatchCounting, *, now: float) -> CowatchStep:
    """Fold the helper's next batch in (nothing when none is ready), then acknowledge it."""
    batch = counting.source.cowatch_batch()
    if not batch.batch_id:
        return CowatchStep(0, 0, None)
    key = X25519PrivateKey.from_private_bytes(storage.cowatch.keys().hpke_key)
    points: list[tuple[bytes, Share]] = []
    refused = 0
    for report in batch.reports:
        try:
            points.append((report.tag, open_report(report, key)))
        except InputError:
            refused += 1
    rank = None if counting.privacy is not None else counting.ranking
    fold = storage.cowatch.fold(points, resolve=_resolver(counting.threshold), rank=rank, now=now)
    counting.source.cowatch_ack(batch.batch_id)
    if refused:
        log.info("co-watch: %d of %d reports did not open", refused, len(batch.reports))
    return CowatchStep(len(batch.reports), refused, fold)


def release_private(storage: Storage, counting: CowatchCounting, *, now: float) -> PrivateRelease:
    """One private release: fresh noise on every read pair's count, the pairs that pass
    the threshold ranked and quantised as ever, its (ε, δ) in the ledger."""
    release = _release(storage, counting, now=now, owed=False)
    assert release is not None  # only an ``owed`` release can find nothing to do
    return release


def release_owed(
    storage: Storage, counting: CowatchCounting, *, now: float
) -> PrivateRelease | None:
    """:func:`release_private` if a fold is still owed when its transaction starts, else
    None (nothing released, nothing spent): what a round makes, so that two rounds at
    once (two replicas) that both saw a fold owed release and spend once."""
    return _release(storage, counting, now=now, owed=True)


def _release(
    storage: Storage, counting: CowatchCounting, *, now: float, owed: bool
) -> PrivateRelease | None:
    privacy = counting.privacy
    if privacy is None:
        raise ConfigError("a private co-watch release needs central DP on (an ε > 0)")
    cowatch = storage.cowatch
    noise = noisy_counts(privacy, k=counting.threshold, draw=cowatch.privacy_ledger().releases)
    return cowatch.release_private(
        noise=noise,
        rank=counting.ranking,
        spend=PrivacySpend(privacy.epsilon, privacy.delta),
        now=now,
        owed=owed,
    )
