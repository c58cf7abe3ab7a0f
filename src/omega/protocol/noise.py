"""The discrete Laplace noise each server of two-server counting adds to its share.

Both the leader (``omega.federation.shared``) and the helper (``omega.helper``) add it
to their half of a batch's histogram, so neither learns exact counts from the other's.

:func:`laplace_sampler` is the one place that picks how the noise is drawn:

- :class:`ExactLaplace` (the default, whatever protects real TVs): OpenDP's discrete
  Laplace, sampled exactly in integer and rational arithmetic (Canonne, Kamath and
  Steinke 2020) from OpenSSL's CSPRNG. Noise drawn through floating point (numpy's
  geometric included) has gaps that can leak what it hides (Mironov 2012), and a PCG64
  stream can be predicted from enough of its output: neither holds an ε guarantee.
- :class:`SeededLaplace`, only when a seed is given: a difference of two numpy
  geometrics from a seeded PCG64, so that a simulation reproduces its counts. Never in
  production (``share_noise_seed`` says so).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from omega.errors import ConfigError

if TYPE_CHECKING:
    from opendp.mod import Measurement

__all__ = ["ExactLaplace", "LaplaceSampler", "SeededLaplace", "laplace_sampler", "laplace_variance"]

Noise = npt.NDArray[np.int64]


def laplace_variance(epsilon: float) -> float:
    """The variance of discrete Laplace noise with parameter ``exp(−ε)`` (0 for ε = 0)."""
    if epsilon <= 0:
        return 0.0
    q = math.exp(-epsilon)
    return 2.0 * q / (1.0 - q) ** 2


class LaplaceSampler(Protocol):
    """Draws ``size`` independent discrete Laplace values, P(k) ∝ exp(−ε·|k|): ε-DP for
    counts that one report moves by at most 1. Zeros when ε = 0."""

    @property
    def epsilon(self) -> float: ...

    def __call__(self, size: int) -> Noise: ...


class ExactLaplace:
    """OpenDP's exact discrete Laplace of scale 1/ε, from a cryptographic source."""

    def __init__(self, epsilon: float) -> None:
        self.epsilon = epsilon
        self._measurement = _opendp_laplace(epsilon) if epsilon > 0 else None

    def __call__(self, size: int) -> Noise:
        if self._measurement is None:
            return np.zeros(size, dtype=np.int64)
        return np.asarray(self._measurement([0] * size), dtype=np.int64)


class SeededLaplace:
    """The same distribution from a seeded PCG64, reproducible draw after draw."""

    def __init__(self, epsilon: float, seed: int) -> None:
        self.epsilon = epsilon
        self._rng = np.random.default_rng(seed)

    def __call__(self, size: int) -> Noise:
        if self.epsilon <= 0:
            return np.zeros(size, dtype=np.int64)
        p = 1.0 - math.exp(-self.epsilon)
        return (self._rng.geometric(p, size) - self._rng.geometric(p, size)).astype(np.int64)


def laplace_sampler(epsilon: float, *, seed: int | None = None) -> LaplaceSampler:
    """The sampler a server adds its noise with: exact and cryptographic unless ``seed``
    is given (simulations that must reproduce)."""
    if seed is not None:
        return SeededLaplace(epsilon, seed)
    return ExactLaplace(epsilon)


def _opendp_laplace(epsilon: float) -> Measurement:
    """OpenDP's measurement adding discrete Laplace noise to a vector of int64 counts.

    Imported here: a TV imports ``omega.protocol`` and never adds server noise."""
    import opendp.prelude as dp

    dp.enable_features("contrib")  # OpenDP gates make_laplace behind "contrib"
    space = dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64")
    measurement = dp.m.make_laplace(*space, scale=1.0 / epsilon)
    # What OpenDP proves for one report's change of 1: ε up to the rounding of 1/ε.
    if not measurement.check(1, epsilon * (1 + 1e-9)):
        raise ConfigError(f"OpenDP does not prove ε = {epsilon} for its discrete Laplace")
    return measurement
