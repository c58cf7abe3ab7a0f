"""The servers' noise: OpenDP's exact discrete Laplace from a cryptographic source by
default, a seeded numpy stream only when a seed is given; both with the distribution
that ``laplace_variance`` and the ε accounting assume."""

from __future__ import annotations

import math

import numpy as np
import pytest

from omega.protocol.noise import (
    ExactLaplace,
    LaplaceSampler,
    SeededLaplace,
    laplace_sampler,
    laplace_variance,
)

DRAWS = 100_000


def test_servers_draw_exact_noise_unless_a_seed_is_given() -> None:
    assert isinstance(laplace_sampler(4.0), ExactLaplace)
    assert isinstance(laplace_sampler(4.0, seed=3), SeededLaplace)


@pytest.mark.parametrize("sampler", [ExactLaplace(1.0), SeededLaplace(1.0, seed=11)])
def test_noise_follows_the_discrete_laplace_of_its_epsilon(sampler: LaplaceSampler) -> None:
    noise = sampler(DRAWS)
    assert noise.dtype == np.int64 and noise.shape == (DRAWS,)
    variance = laplace_variance(1.0)  # 2q/(1−q)² with q = e⁻¹: ≈ 1.84
    # Mean within 5 standard errors, variance within 4 % (about 8 standard errors).
    assert abs(float(noise.mean())) < 5 * math.sqrt(variance / DRAWS)
    assert float(noise.var()) == pytest.approx(variance, rel=0.04)
    # P(k) = (1−q)/(1+q)·q^|k|: the shape, not only the spread.
    q = math.exp(-1.0)
    for k in (0, 1, -1, 2, -3):
        expected = (1 - q) / (1 + q) * q ** abs(k)
        seen = float(np.mean(noise == k))
        assert seen == pytest.approx(expected, abs=5 * math.sqrt(expected / DRAWS))


def test_exact_noise_differs_between_two_servers() -> None:
    # From a CSPRNG: two instances (two servers, two restarts) never share a stream.
    a, b = ExactLaplace(4.0), ExactLaplace(4.0)
    assert not np.array_equal(a(2000), b(2000))


def test_seeded_noise_reproduces_draw_after_draw() -> None:
    a, b = SeededLaplace(4.0, seed=7), SeededLaplace(4.0, seed=7)
    first = a(500)
    assert np.array_equal(first, b(500)) and np.array_equal(a(500), b(500))
    # The simulator's stream as it always was: a difference of two PCG64 geometrics.
    rng = np.random.default_rng(7)
    p = 1 - math.exp(-4.0)
    assert np.array_equal(first, rng.geometric(p, 500) - rng.geometric(p, 500))


@pytest.mark.parametrize("sampler", [laplace_sampler(0.0), laplace_sampler(0.0, seed=1)])
def test_epsilon_zero_adds_no_noise(sampler: LaplaceSampler) -> None:
    assert not sampler(100).any() and laplace_variance(0.0) == 0.0
