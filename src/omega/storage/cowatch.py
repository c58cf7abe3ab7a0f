"""The constellation's co-watch store: its keys, the OPRF rate limit, opened reports,
pairs read at the threshold, and the released per-title table (``docs/cowatch.md``).

An interface with one SQL implementation that runs on both backends
(``omega.storage._sql_cowatch``); a :class:`~omega.storage.Storage` hands it out as
``storage.cowatch``. Which tags count as read is the caller's decision (``resolve``,
from ``omega.federation.cowatch``); the store only keeps what it is given, in one
transaction per batch.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from omega.errors import InputError
from omega.protocol.cowatch import Share

__all__ = [
    "CowatchFold",
    "CowatchKeys",
    "CowatchRow",
    "CowatchStore",
    "Noise",
    "OprfOverBudget",
    "PrivacyLedger",
    "PrivacySpend",
    "PrivateRelease",
    "Rank",
    "Resolve",
    "StoredPair",
]


class OprfOverBudget(InputError):
    """A viewer asked for more OPRF evaluations than its epoch allows (HTTP 429)."""


@dataclass(frozen=True, slots=True)
class CowatchKeys:
    """The constellation's second OPRF key (a scalar) and its raw X25519 private key."""

    oprf_key: bytes
    hpke_key: bytes


@dataclass(frozen=True, slots=True)
class StoredPair:
    """A tag read: its pair, its secret (to check later points) and its distinct TVs."""

    a: int
    b: int
    secret: int
    tvs: int


@dataclass(frozen=True, slots=True)
class CowatchRow:
    """A released row: ``source``'s neighbours (position, quantised TVs), best first,
    as of co-watch ``version``. No neighbours: the source's earlier row is withdrawn."""

    version: int
    source: int
    neighbours: list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class CowatchFold:
    """What one batch changed: points stored (new ones), pairs read or recounted, rows
    re-released, and the co-watch version after it."""

    stored: int
    pairs: int
    rows: int
    version: int


@dataclass(frozen=True, slots=True)
class PrivacySpend:
    """The (ε, δ) one private release spends (``omega.federation.cowatch_dp``)."""

    epsilon: float
    delta: float


@dataclass(frozen=True, slots=True)
class PrivateRelease:
    """What one private release did: pairs it drew noise for, pairs that passed the
    threshold, rows re-released, and the co-watch version after it."""

    pairs: int
    released: int
    rows: int
    version: int


@dataclass(frozen=True, slots=True)
class PrivacyLedger:
    """The private releases made so far and their (ε, δ) added up (basic composition)."""

    releases: int
    epsilon: float
    delta: float


#: Decides a tag from all its points and what is known of it: the pair (newly read or
#: recounted), or None while it stays unread.
Resolve = Callable[[bytes, list[Share], StoredPair | None], StoredPair | None]


class Rank(Protocol):
    """A released row's neighbours (neighbour, count), best first, from a source's pairs
    as (neighbour, TVs, the neighbour's own best TVs as a source over every read pair —
    0 when it has no pair of its own). ``follows``: a row depends on its neighbours' own
    rows, so the store re-ranks every row pointing at a source whose best count rose.
    ``policy``: names what the ranking depends on; a fold under another policy than the
    last one's re-ranks every row (a changed bound or rule applies to the whole table)."""

    @property
    def follows(self) -> bool: ...

    @property
    def policy(self) -> str: ...

    def __call__(self, pairs: list[tuple[int, int, int]]) -> list[tuple[int, int]]: ...


#: A private release's counts from every read pair's TVs (in order): the count to
#: publish, or None where the pair is withheld.
Noise = Callable[[list[int]], list[int | None]]


class CowatchStore(abc.ABC):
    @abc.abstractmethod
    def keys(self) -> CowatchKeys:
        """The keys, made on first use (the first caller's win when two race)."""

    @abc.abstractmethod
    def charge_oprf(
        self, viewer_id: str, *, epoch: int, points: Sequence[bytes], bound: int
    ) -> int:
        """Charge the evaluation of ``points`` to the viewer's ``epoch``; what is left. A
        point the viewer had evaluated in this epoch costs nothing again (a retried
        request whose answer was lost).
        :class:`OprfOverBudget` (nothing charged) past ``bound``; the push refusals
        (``InputError``, ``RevokedError``) for a viewer that may not contribute."""

    @abc.abstractmethod
    def fold(
        self, points: list[tuple[bytes, Share]], *, resolve: Resolve, rank: Rank | None, now: float
    ) -> CowatchFold:
        """Store a batch's points (a point already stored is skipped: a batch may come
        twice), resolve every tag the batch names, and re-release the rows of sources
        whose pairs changed — one transaction. ``rank`` None: release nothing (the
        private release does, from noisy counts) and count the fold as unreleased
        (:meth:`unreleased_folds`)."""

    @abc.abstractmethod
    def release_private(
        self, *, noise: Noise, rank: Rank, spend: PrivacySpend, now: float, owed: bool = False
    ) -> PrivateRelease | None:
        """Re-release every row from ``noise`` applied to every read pair's TVs: rows
        whose neighbours changed get the next version, a published row left with none is
        withdrawn; ``spend`` goes in the ledger and the unreleased folds go back to 0 —
        one transaction, so a release that fails charges nothing and leaves them owed.
        ``owed``: only if a fold is still owed, decided inside that transaction (another
        round's release may have covered it since the caller looked): None, nothing
        released or charged, when none is."""

    @abc.abstractmethod
    def unreleased_folds(self) -> int:
        """Batches folded without a release (``rank`` None) since the last private
        release: a private release is owed while this is above 0."""

    @abc.abstractmethod
    def privacy_ledger(self) -> PrivacyLedger:
        """The private releases so far (0, 0.0, 0.0 when central DP was never on)."""

    @abc.abstractmethod
    def version(self) -> int:
        """The co-watch version: 0 before any row was released."""

    @abc.abstractmethod
    def rows_after(self, *, version: int, source: int, limit: int) -> list[CowatchRow]:
        """Rows after ``(version, source)`` in (version, source) order, at most ``limit``."""

    @abc.abstractmethod
    def pending_tags(self) -> int:
        """Tags with points but no pair read (what the constellation cannot read)."""
