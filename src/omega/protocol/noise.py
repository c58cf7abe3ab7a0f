"""The discrete Laplace noise each server of two-server counting adds to its share.

Both the leader (``omega.federation.shared``) and the helper (``omega.helper``) add it
to their half of a batch's histogram, so neither learns exact counts from the other's.
"""

from __future__ import annotations

import math
import secrets

import numpy as np

__all__ = ["laplace_noise", "laplace_variance"]


def laplace_variance(epsilon: float) -> float:
    """The variance of discrete Laplace noise with parameter ``exp(−ε)`` (0 for ε = 0)."""
    if epsilon <= 0:
        return 0.0
    q = math.exp(-epsilon)
    return 2.0 * q / (1.0 - q) ** 2


def laplace_noise(epsilon: float, size: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Discrete Laplace noise (difference of two geometrics): ε-DP for counts that one
    report moves by at most 1. Zeros when ε = 0. ``rng``: a seeded generator for
    reproducible simulations; by default one seeded from the OS's CSPRNG."""
    if epsilon <= 0:
        return np.zeros(size, dtype=np.int64)
    rng = rng or np.random.default_rng(secrets.randbits(128))
    p = 1.0 - math.exp(-epsilon)
    return (rng.geometric(p, size) - rng.geometric(p, size)).astype(np.int64)
