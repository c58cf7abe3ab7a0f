"""What the device believes about a pattern key when its own evidence and the
constellation's disagree: four strategies over one order-free state.

Evidence is ``(successes, trials, version, origin)``. Updates about a key may arrive in
any order and any number of times (a retried pull, a re-sent release, a replayed
episode log), so they are first folded into a :class:`Ledger` that keeps, per origin,
the greatest update by ``(version, trials, successes)``. That fold is a join: it is
commutative, associative and idempotent, so the ledger — and every strategy's verdict,
a function of the ledger alone — is the same for every order and duplication of one set
of updates.

Strategies:

- ``viewer-wins``: the device's evidence when it has at least ``min_support`` trials;
- ``omega-wins``: the constellation's evidence whenever it has any;
- ``quality-wins``: the higher success rate (ties broken by trials, then origin);
- ``merge``: both pooled, ``rate = Σ successes / Σ trials``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from omega.brain.config import ConflictStrategy
from omega.errors import ConfigError

__all__ = [
    "STRATEGIES",
    "ConflictStrategy",
    "Evidence",
    "Ledger",
    "Origin",
    "check_strategy",
    "resolve",
    "resolve_updates",
]

Origin = Literal["viewer", "omega"]
STRATEGIES: tuple[str, ...] = get_args(ConflictStrategy)


@dataclass(frozen=True, slots=True)
class Evidence:
    successes: float
    trials: float
    version: int
    origin: Origin

    @property
    def rate(self) -> float:
        return self.successes / self.trials if self.trials > 0 else 0.0

    def _rank(self) -> tuple[int, float, float]:
        return (self.version, self.trials, self.successes)


@dataclass(frozen=True, slots=True)
class Ledger:
    """The newest evidence per origin (None: nothing heard from it)."""

    viewer: Evidence | None = None
    omega: Evidence | None = None

    def add(self, update: Evidence) -> Ledger:
        if update.origin == "viewer":
            return Ledger(_newer(self.viewer, update), self.omega)
        return Ledger(self.viewer, _newer(self.omega, update))

    def join(self, other: Ledger) -> Ledger:
        return Ledger(_newer(self.viewer, other.viewer), _newer(self.omega, other.omega))

    @classmethod
    def of(cls, updates: Iterable[Evidence]) -> Ledger:
        ledger = cls()
        for update in updates:
            ledger = ledger.add(update)
        return ledger


def _newer(a: Evidence | None, b: Evidence | None) -> Evidence | None:
    if a is None:
        return b
    if b is None:
        return a
    return b if b._rank() > a._rank() else a


def check_strategy(name: str) -> ConflictStrategy:
    if name not in STRATEGIES:
        raise ConfigError(f"unknown conflict strategy {name!r}; choose one of {STRATEGIES}")
    return name  # type: ignore[return-value]


def resolve(ledger: Ledger, strategy: ConflictStrategy, *, min_support: int = 3) -> Evidence | None:
    """The evidence the device acts on for one key, or None when nobody said anything."""
    viewer, omega = ledger.viewer, ledger.omega
    if viewer is None or omega is None:
        return viewer or omega
    if strategy == "viewer-wins":
        return viewer if viewer.trials >= min_support else omega
    if strategy == "omega-wins":
        return omega
    if strategy == "quality-wins":
        return max((viewer, omega), key=lambda e: (e.rate, e.trials, e.origin == "viewer"))
    if strategy == "merge":
        # Pooled evidence; it speaks for both, so its origin is the constellation's.
        return Evidence(
            successes=viewer.successes + omega.successes,
            trials=viewer.trials + omega.trials,
            version=max(viewer.version, omega.version),
            origin="omega",
        )
    raise ConfigError(f"unknown conflict strategy {strategy!r}")


def resolve_updates(
    updates: Iterable[Evidence], strategy: ConflictStrategy, *, min_support: int = 3
) -> Evidence | None:
    """:func:`resolve` over the ledger of ``updates`` (any order, any duplicates)."""
    return resolve(Ledger.of(updates), strategy, min_support=min_support)
