"""Synthetic catalogs for benchmarks and the demo, deterministic for a seed.

:func:`synthetic_titles` writes items that read like real films and series: titles are
composed from per-genre word lists (``synthetic_genres.toml``) and grouped into
franchises (sequels, seasons), so the real embedder sees genre and franchise structure.
:func:`clustered_vectors` makes unit vectors with a similar structure directly, for
100K-item benchmarks where running every title through the model would take too long.
"""

from __future__ import annotations

import functools
import random
import tomllib
from dataclasses import dataclass
from importlib import resources

import numpy as np
import numpy.typing as npt

from omega.brain.catalog import CatalogItem
from omega.protocol import EMBEDDING_DIM

__all__ = ["SyntheticItem", "clustered_vectors", "synthetic_titles"]


@dataclass(frozen=True, slots=True)
class SyntheticItem:
    """One made-up catalog entry."""

    item_id: str
    title: str
    genres: tuple[str, ...]
    year: int
    runtime_min: int
    description: str

    def catalog_item(
        self, *, description: bool = False, embedding: npt.NDArray[np.float32] | None = None
    ) -> CatalogItem:
        """This entry as the brain's catalog takes it (its blurb and a vector if asked)."""
        return CatalogItem(
            item_id=self.item_id,
            title=self.title,
            genres=self.genres,
            year=self.year,
            runtime_min=self.runtime_min,
            description=self.description if description else "",
            embedding=embedding,
        )


@dataclass(frozen=True, slots=True)
class _Genre:
    """A genre's title words, blurb pieces and the secondary genres that go with it."""

    adj: tuple[str, ...]
    noun: tuple[str, ...]
    who: tuple[str, ...]
    goal: tuple[str, ...]
    companions: tuple[str, ...]


@functools.cache
def _genres() -> dict[str, _Genre]:
    """The genres in file order (titles are drawn from their lists with a seeded RNG)."""
    text = resources.files("omega.sim").joinpath("synthetic_genres.toml").read_text("utf-8")
    return {
        name: _Genre(**{key: tuple(words) for key, words in lists.items()})
        for name, lists in tomllib.loads(text).items()
    }


_PLACES = ("Paris", "Tokyo", "Brooklyn", "the North", "Avalon", "Mars", "Texas", "Venice")
_SUBTITLES = ("Reckoning", "Resurrection", "The Return", "Legacy", "Rebirth", "Endgame")
_ROMAN = ("II", "III", "IV", "V", "VI")


def _base_title(rng: random.Random, genre: str) -> str:
    words = _genres()[genre]
    adj, noun = rng.choice(words.adj), rng.choice(words.noun)
    form = rng.randrange(5)
    if form == 0:
        return f"The {adj} {noun}"
    if form == 1:
        return f"{adj} {noun}"
    if form == 2:
        return f"{noun} in {rng.choice(_PLACES)}"
    if form == 3:
        return f"The {noun} of {rng.choice(_PLACES)}"
    second = rng.choice([w for w in words.noun if w != noun])
    return f"{adj} {noun}: {second}"


def _member_title(base: str, index: int, series: bool, roman: bool, subtitle: str) -> str:
    if index == 0:
        return base
    if series:
        return f"{base}{', ' if ':' in base else ': '}Season {index + 1}"
    number = _ROMAN[min(index - 1, len(_ROMAN) - 1)] if roman else str(index + 1)
    if subtitle and ":" not in base:
        return f"{base} {number}: {subtitle}"
    return f"{base} {number}"


def synthetic_titles(n: int, *, seed: int = 0) -> list[SyntheticItem]:
    """``n`` made-up films and series grouped in franchises; the same for the same seed."""
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    rng = random.Random(seed)
    by_name = _genres()
    genres = tuple(by_name)
    items: list[SyntheticItem] = []
    while len(items) < n:
        primary = rng.choice(genres)
        companions = by_name[primary].companions
        extra = rng.sample(companions, k=min(rng.randrange(3), len(companions)))
        item_genres = (primary, *extra)
        series = rng.random() < 0.25
        # Most franchises have one entry; a heavy tail has many sequels or seasons.
        size = min(int(rng.paretovariate(1.5)) + 1, 8) if rng.random() < 0.3 else 1
        base = _base_title(rng, primary)
        roman = rng.random() < 0.4
        year = min(2025 - 2 * size, max(1950, int(rng.gauss(2006, 13))))
        words = by_name[primary]
        for index in range(size):
            if len(items) == n:
                break
            runtime = rng.randint(22, 60) if series else rng.randint(80, 170)
            if primary == "Animation" and not series:
                runtime = rng.randint(75, 105)
            description = (
                f"{rng.choice(words.who).capitalize()} must {rng.choice(words.goal)}."
                f" {'An' if primary[0] in 'AEIOU' else 'A'} {primary.lower()}"
                f" {'series' if series else 'film'}"
                f"{' set in ' + rng.choice(_PLACES) if rng.random() < 0.5 else ''}."
            )
            items.append(
                SyntheticItem(
                    item_id=f"syn-{len(items):06d}",
                    title=_member_title(
                        base,
                        index,
                        series,
                        roman,
                        rng.choice(_SUBTITLES) if rng.random() < 0.3 else "",
                    ),
                    genres=item_genres,
                    year=year + index * (1 if series else 2),
                    runtime_min=runtime,
                    description=description,
                )
            )
    return items


def clustered_vectors(
    n: int, dim: int = EMBEDDING_DIM, *, clusters: int = 200, seed: int = 0
) -> npt.NDArray[np.float32]:
    """``n`` unit float32 vectors shaped like sentence embeddings of a catalog.

    Clusters (franchises, niches) of very different sizes sit inside a few broader
    genre regions; each cluster is stretched along its own few directions, and all
    vectors share a common component, as real text embeddings do.
    """
    if n < 0 or dim < 2 or clusters < 1:
        raise ValueError(f"need n >= 0, dim >= 2, clusters >= 1; got {n}, {dim}, {clusters}")
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    if n == 0:
        return out

    def unit(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        scaled: npt.NDArray[np.float64] = x / np.linalg.norm(x, axis=-1, keepdims=True)
        return scaled

    common = unit(rng.standard_normal(dim))
    regions = unit(0.45 * common + unit(rng.standard_normal((max(2, clusters // 10), dim))))
    region_of = rng.integers(0, len(regions), size=clusters)
    centers = unit(regions[region_of] + 0.9 * unit(rng.standard_normal((clusters, dim))))
    weights = rng.lognormal(mean=0.0, sigma=1.0, size=clusters)
    labels = rng.choice(clusters, size=n, p=weights / weights.sum())
    rank = min(8, dim)
    for c in range(clusters):
        members = np.flatnonzero(labels == c)
        if members.size == 0:
            continue
        spread = rng.uniform(0.5, 1.1)
        axes = unit(rng.standard_normal((rank, dim))) * (spread / np.arange(1, rank + 1))[:, None]
        along = rng.standard_normal((members.size, rank)) @ axes
        noise = rng.standard_normal((members.size, dim)) * (0.35 * spread / np.sqrt(dim))
        out[members] = unit(centers[c] + along + noise)
    return out
