"""Optional central differential privacy on the released co-watch counts
(``docs/cowatch.md``, "Central DP on released counts").

Off by default: at hundreds of TVs the threshold it needs releases nothing. When on,
each private release takes the distinct-TV count of **every** pair read so far, adds
fresh discrete Laplace noise to each and keeps a pair only if its noisy count reaches a
threshold chosen for (ε, δ): OpenDP's ``make_laplace_threshold`` (Rogers 2023), noise
sampled exactly from OpenSSL's CSPRNG, so no floating-point gaps (Mironov 2012).

The unit of privacy is **one TV's contributions of one epoch**: at most ``per_epoch``
pairs, each once (the helper refuses a device's second report of a tag), so it moves at
most ``per_epoch`` counts by 1 each (L0 = ``per_epoch``, L∞ = 1). A pair is read only
at k TVs; counts are shifted by k − 1 before the mechanism, so the TV that brings a
pair from k − 1 (unread, absent) to k moves it from absent to 1, as the mechanism's
partition selection assumes.

Every release draws fresh noise for every count and spends its (ε, δ) again (basic
composition; ``CowatchStore.privacy_ledger`` adds them up). Reusing a count's noise when
it did not change would not be cheaper honestly: *whether* a count changed is exactly
what one TV's report decides, and a value that stays put when it would otherwise be
redrawn tells it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from omega.errors import ConfigError
from omega.protocol.noise import SeededLaplace

if TYPE_CHECKING:
    from opendp.mod import Measurement

__all__ = [
    "Calibration",
    "CowatchPrivacy",
    "NoisyCounts",
    "calibrate",
    "check_privacy",
    "noisy_counts",
]

#: A threshold past this would release nothing at any fleet's size.
_MAX_THRESHOLD = 2**31 - 2


@dataclass(frozen=True, slots=True)
class CowatchPrivacy:
    """ε and δ of one private release, the pairs one TV changes per epoch (L0), and a
    seed only for simulations that must reproduce (never in production: a seeded PCG64
    is predictable; unset, OpenDP's exact sampler draws from the OS)."""

    epsilon: float
    delta: float = 1e-6
    per_epoch: int = 128
    seed: int | None = None

    def __post_init__(self) -> None:
        check_privacy(self.epsilon, self.delta)
        if self.epsilon == 0:
            raise ConfigError("a private co-watch release needs ε > 0 (0 turns it off)")
        if self.per_epoch < 1:
            raise ConfigError("the co-watch pairs per TV per epoch must be at least 1")
        calibrate(self.epsilon, self.delta, self.per_epoch)  # refused now, not in a round


def check_privacy(epsilon: float, delta: float) -> None:
    """:class:`ConfigError` naming the setting unless ε ≥ 0 (0: off) and 0 < δ < 1."""
    if not (math.isfinite(epsilon) and epsilon >= 0):
        raise ConfigError(f"--cowatch-dp-epsilon must be ≥ 0 (0 turns it off), got {epsilon}")
    if not (math.isfinite(delta) and 0 < delta < 1):
        raise ConfigError(f"--cowatch-dp-delta must be between 0 and 1, got {delta}")


@dataclass(frozen=True, slots=True)
class Calibration:
    """The noise's scale and the threshold a shifted noisy count must reach (≥)."""

    scale: float
    threshold: int


@functools.lru_cache(maxsize=32)
def calibrate(epsilon: float, delta: float, per_epoch: int) -> Calibration:
    """Scale L0/ε (one TV moves ≤ ``per_epoch`` counts by 1: L1 = L0) and the threshold:
    one above the smallest τ for which OpenDP's privacy map proves (ε, δ).

    The one above: OpenDP 0.16 keeps a count whose noisy value is ≥ τ, but its map
    bounds δ by the tail *beyond* τ − 1 (opendp/opendp#2922, open): a count of 1 is
    kept with probability P(Z ≥ τ − 1), the map counts P(Z ≥ τ). Measured here at scale
    1, τ 3: kept 0.101 of 20,000 draws, the map's δ 0.036. Keeping only counts ≥ τ + 1
    makes the mechanism's δ the one the map states."""
    scale = per_epoch / epsilon
    d_in = (per_epoch, per_epoch, 1)

    def proves(threshold: int) -> bool:
        eps, dlt = _measurement(scale, threshold).map(d_in)  # type: ignore[no-untyped-call]
        return bool(eps <= epsilon * (1 + 1e-9) and dlt <= delta)

    low, high = 0, _MAX_THRESHOLD  # δ falls as the threshold rises: bisect for the first
    if not proves(high):
        raise ConfigError(
            f"--cowatch-dp-epsilon {epsilon:g} with --cowatch-dp-delta {delta:g} needs a "
            f"threshold above {_MAX_THRESHOLD:,} TVs: give a larger ε or δ"
        )
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if proves(middle) else (middle, high)
    return Calibration(scale, high + 1)


def noisy_counts(privacy: CowatchPrivacy, *, k: int, draw: int = 0) -> NoisyCounts:
    """The noise of one release for pairs read at ``k`` TVs; ``draw`` varies a seeded
    simulation's noise from release to release."""
    return NoisyCounts(privacy, k=k, draw=draw)


class NoisyCounts:
    """Called with every read pair's TVs (in the store's order): each one's noisy count
    to publish (TVs, shifted back), or None where the pair is withheld."""

    def __init__(self, privacy: CowatchPrivacy, *, k: int, draw: int) -> None:
        self.privacy = privacy
        self.calibration = calibrate(privacy.epsilon, privacy.delta, privacy.per_epoch)
        self._shift = k - 1
        self._draw = draw

    def __call__(self, tvs: list[int]) -> list[int | None]:
        shifted = {i: t - self._shift for i, t in enumerate(tvs)}
        kept = self._seeded(shifted) if self.privacy.seed is not None else self._exact(shifted)
        return [kept[i] + self._shift if i in kept else None for i in range(len(tvs))]

    def _exact(self, shifted: dict[int, int]) -> dict[int, int]:
        c = self.calibration
        out: dict[int, int] = _measurement(c.scale, c.threshold)(shifted)
        return out

    def _seeded(self, shifted: dict[int, int]) -> dict[int, int]:
        """The same distribution from a seeded PCG64 (``SeededLaplace``, scale 1/ε')."""
        seed = (self.privacy.seed or 0) * 1_000_003 + self._draw
        noise = SeededLaplace(1.0 / self.calibration.scale, seed)(len(shifted))
        return {
            i: int(count + z)
            for (i, count), z in zip(shifted.items(), noise, strict=True)
            if count + z >= self.calibration.threshold
        }


@functools.lru_cache(maxsize=32)
def _measurement(scale: float, threshold: int) -> Measurement:
    """OpenDP's thresholded discrete Laplace over a map of int64 counts.

    Imported here: only a constellation with DP on ever loads OpenDP for co-watch."""
    import opendp.prelude as dp

    dp.enable_features("contrib")  # OpenDP gates make_laplace_threshold behind "contrib"
    domain = dp.map_domain(dp.atom_domain(T="i64"), dp.atom_domain(T="i64"))
    metric = dp.l01inf_distance(dp.absolute_distance(T="i64"))
    return dp.m.make_laplace_threshold(domain, metric, scale=scale, threshold=threshold)
