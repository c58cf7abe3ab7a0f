"""Memory tiers as time scales: decayed taste summaries the recommender reads.

Each tier is an exponentially decayed sum of signed item embeddings, ``v ← v·2^(-dt/h) +
w·e``, with its own half-life ``h``. Every event updates every tier (the fast, reflexive
loop); consolidation (session end, daily, weekly) moves knowledge between them (the slow
loops). The collective tier is filled from what the constellation sends, not from events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from omega.brain.config import TierHalfLives

__all__ = ["LOCAL_TIERS", "TIERS", "MemoryTiers", "Tier"]

TIERS = ("instant", "episodic", "semantic", "collective", "evolutionary")
LOCAL_TIERS = ("instant", "episodic", "semantic", "evolutionary")

Vec = npt.NDArray[np.float32]


@dataclass(slots=True)
class Tier:
    """One tier. Whatever changes ``vector`` calls :meth:`changed` (the unit vector
    :meth:`direction` hands out is kept until then: every request reads it)."""

    name: str
    half_life: float
    vector: Vec
    mass: float = 0.0
    updated_at: float = 0.0
    _unit: Vec | None = field(default=None, init=False, repr=False, compare=False)
    _unit_kept: bool = field(default=False, init=False, repr=False, compare=False)

    def changed(self) -> None:
        """Forget the unit vector kept: ``vector`` has changed."""
        self._unit, self._unit_kept = None, False

    def decay_to(self, now: float) -> None:
        if self.updated_at and now > self.updated_at and np.isfinite(self.half_life):
            factor = float(2.0 ** (-(now - self.updated_at) / self.half_life))
            self.vector *= factor
            self.mass *= factor
            self.changed()
        self.updated_at = max(self.updated_at, now)

    def add(self, embedding: Vec, weight: float, now: float) -> None:
        self.decay_to(now)
        self.vector += np.float32(weight) * embedding
        self.mass += abs(weight)
        self.changed()

    def direction(self, now: float) -> Vec | None:
        """The tier's current taste as a unit vector, or None when it holds nothing."""
        if self.mass <= 1e-6:
            return None
        factor = 1.0
        if self.updated_at and now > self.updated_at and np.isfinite(self.half_life):
            factor = float(2.0 ** (-(now - self.updated_at) / self.half_life))
        if self.mass * factor <= 1e-3:
            return None
        if not self._unit_kept:
            # The norm as np.linalg.norm takes it (the root of the float32 dot product),
            # without its dispatch. Decay scales the vector, not its direction, so the
            # unit vector holds until the vector itself changes (read-only: it is shared).
            norm = math.sqrt(float(self.vector @ self.vector))
            self._unit = None if norm <= 1e-9 else self.vector / np.float32(norm)
            if self._unit is not None:
                self._unit.flags.writeable = False
            self._unit_kept = True
        return self._unit

    def strength(self, now: float) -> float:
        """Decayed mass: how much evidence the tier holds right now."""
        if not self.updated_at or not np.isfinite(self.half_life):
            return self.mass
        return self.mass * float(2.0 ** (-max(0.0, now - self.updated_at) / self.half_life))


class MemoryTiers:
    """The five tiers of one brain."""

    def __init__(self, dim: int, half_lives: TierHalfLives) -> None:
        lives = {
            "instant": half_lives.instant,
            "episodic": half_lives.episodic,
            "semantic": half_lives.semantic,
            "collective": float("inf"),
            "evolutionary": half_lives.evolutionary,
        }
        self.dim = dim
        # One matrix, one row per tier, local tiers first: the per-event update works on a
        # contiguous slice in two array operations.
        order = (*LOCAL_TIERS, "collective")
        self.matrix = np.zeros((len(order), dim), dtype=np.float32)
        self.tiers = {name: Tier(name, lives[name], self.matrix[i]) for i, name in enumerate(order)}
        self._local = [self.tiers[n] for n in LOCAL_TIERS]
        self._local_rows = self.matrix[: len(LOCAL_TIERS)]
        self._factors = np.ones(len(LOCAL_TIERS), dtype=np.float32)

    def __getitem__(self, name: str) -> Tier:
        return self.tiers[name]

    def observe(self, embedding: Vec, reward: float, now: float) -> None:
        """The reflexive loop: every local tier learns from every event at once.

        Rewards above 0.5 pull the taste towards the item, below push it away; the
        push-away is damped because an abandon says less than a completion.
        """
        signed = (reward - 0.5) * 2.0
        weight = signed if signed >= 0 else 0.5 * signed
        for i, tier in enumerate(self._local):
            factor = 1.0
            if tier.updated_at and now > tier.updated_at:
                factor = math.exp2(-(now - tier.updated_at) / tier.half_life)
            self._factors[i] = factor
            tier.mass = tier.mass * factor + abs(weight)
            tier.updated_at = max(tier.updated_at, now)
        self._local_rows *= self._factors[:, None]
        self._local_rows += np.float32(weight) * embedding
        for tier in self._local:
            tier.changed()

    def load(self, name: str, vector: Vec, mass: float, updated_at: float) -> None:
        tier = self.tiers[name]
        tier.vector[:] = vector
        tier.mass, tier.updated_at = mass, updated_at
        tier.changed()

    def end_session(self, now: float) -> None:
        """Session consolidation: the instant tier starts afresh for the next session."""
        instant = self.tiers["instant"]
        instant.vector[:] = 0.0  # a view into the matrix: cleared in place
        instant.changed()
        instant.mass = 0.0
        instant.updated_at = now

    def set_collective(self, vector: Vec, mass: float, now: float) -> None:
        tier = self.tiers["collective"]
        tier.vector[:] = vector.astype(np.float32)
        tier.changed()
        tier.mass = mass
        tier.updated_at = now

    def summary(self, now: float) -> dict[str, dict[str, float]]:
        return {
            name: {
                "strength": round(tier.strength(now), 4),
                "half_life_h": round(tier.half_life / 3600.0, 2)
                if np.isfinite(tier.half_life)
                else -1.0,
                "updated_at": tier.updated_at,
            }
            for name, tier in self.tiers.items()
        }
