"""Synthetic catalogs for benchmarks and the demo, deterministic for a seed.

:func:`synthetic_titles` writes items that read like real films and series: titles are
composed from per-genre word lists and grouped into franchises (sequels, seasons), so the
real embedder sees genre and franchise structure. :func:`clustered_vectors` makes unit
vectors with a similar structure directly, for 100K-item benchmarks where running every
title through the model would take too long.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

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


# Per genre: title words (adjectives, nouns), a runtime range, and blurb pieces.
_GENRES: dict[str, dict[str, tuple[str, ...]]] = {
    "Action": {
        "adj": ("Lethal", "Iron", "Final", "Dead", "Rogue", "Maximum", "Silent", "Burning"),
        "noun": ("Strike", "Protocol", "Vengeance", "Target", "Fury", "Extraction", "Mission"),
        "who": ("a retired commando", "a rookie agent", "an ex-cop", "a getaway driver"),
        "goal": ("stop a stolen warhead", "rescue a kidnapped daughter", "take down a cartel"),
    },
    "Comedy": {
        "adj": ("Crazy", "Totally", "Accidental", "Big", "Wild", "Awkward", "Lucky"),
        "noun": ("Weekend", "Roommates", "Wedding Crashers", "Road Trip", "Neighbours", "Party"),
        "who": ("two slackers", "a clumsy best man", "a stand-up comic", "three old friends"),
        "goal": ("win back a lost bet", "survive a family reunion", "save the local diner"),
    },
    "Drama": {
        "adj": ("Quiet", "Long", "Broken", "Last", "Distant", "Bitter", "Gentle"),
        "noun": ("Harvest", "Winter", "Inheritance", "Promise", "Silence", "Homecoming"),
        "who": ("a grieving widow", "a small-town teacher", "an ageing boxer", "two brothers"),
        "goal": ("face the past", "keep the farm", "forgive an estranged father"),
    },
    "Romance": {
        "adj": ("Sweet", "Endless", "Second", "Paper", "Midnight", "Secret"),
        "noun": ("Love", "Hearts", "Summer", "Kiss", "Letters", "Valentine", "Proposal"),
        "who": ("a bookshop owner", "a travelling chef", "a wedding planner", "a violinist"),
        "goal": (
            "fall for the wrong person",
            "find a lost first love",
            "choose between two hearts",
        ),
    },
    "Horror": {
        "adj": ("Hollow", "Cursed", "Bleeding", "Crimson", "Haunted", "Unholy", "Dark"),
        "noun": ("House", "Ritual", "Whispers", "Basement", "Possession", "Nightmare", "Woods"),
        "who": ("a group of teenagers", "a new family", "a paranormal investigator", "a nurse"),
        "goal": ("survive the night", "break an ancient curse", "escape a demon"),
    },
    "Science Fiction": {
        "adj": ("Quantum", "Stellar", "Synthetic", "Orbital", "Infinite", "Neon", "Lost"),
        "noun": ("Horizon", "Colony", "Signal", "Android", "Nebula", "Paradox", "Frontier"),
        "who": ("a starship pilot", "a rogue android", "a time-travelling physicist", "a crew"),
        "goal": ("save a dying colony", "decode an alien signal", "undo a time paradox"),
    },
    "Fantasy": {
        "adj": ("Enchanted", "Forgotten", "Golden", "Shadow", "Ancient", "Silver", "Dragon"),
        "noun": ("Kingdom", "Crown", "Sword", "Realm", "Prophecy", "Throne", "Sorcerer"),
        "who": ("an orphan wizard", "a reluctant princess", "a dwarf blacksmith", "a knight"),
        "goal": ("reclaim the throne", "destroy a cursed ring", "wake a sleeping dragon"),
    },
    "Thriller": {
        "adj": ("Hidden", "Fatal", "Perfect", "Cold", "Deadly", "Blind", "Double"),
        "noun": ("Witness", "Alibi", "Conspiracy", "Deception", "Obsession", "Verdict", "Trap"),
        "who": ("a defence lawyer", "an investigative journalist", "a hacker", "a detective"),
        "goal": ("expose a conspiracy", "prove an innocent man's case", "catch a serial killer"),
    },
    "Crime": {
        "adj": ("Dirty", "Brooklyn", "Midnight", "Stolen", "Blood", "Gangland", "Hard"),
        "noun": ("Money", "Heist", "Syndicate", "Streets", "Family", "Deal", "Racket"),
        "who": ("a mob accountant", "a crew of thieves", "an undercover cop", "a bookie"),
        "goal": ("pull off one last heist", "climb the mob ladder", "launder a fortune"),
    },
    "Animation": {
        "adj": ("Little", "Brave", "Magic", "Tiny", "Super", "Happy", "Flying"),
        "noun": ("Penguins", "Toys", "Robots", "Dragons", "Friends", "Pets", "Monsters"),
        "who": ("a curious robot", "a lost puppy", "a toy cowboy", "a young fox"),
        "goal": ("find the way home", "save the toy box", "win the big race"),
    },
    "Documentary": {
        "adj": ("Wild", "Hidden", "Blue", "Frozen", "Human", "Secret", "Living"),
        "noun": ("Planet", "Oceans", "Empire", "Earth", "Kitchen", "History", "Machines"),
        "who": ("a film crew", "scientists", "a renowned chef", "historians"),
        "goal": ("follow wildlife across a year", "uncover a forgotten story", "explain a crisis"),
    },
    "Western": {
        "adj": ("Dusty", "Lone", "Rattlesnake", "High", "Outlaw", "Savage", "Red"),
        "noun": ("Trail", "Gulch", "Ranch", "Frontier", "Rider", "Sheriff", "Canyon"),
        "who": ("a bounty hunter", "a widowed rancher", "a drifting gunslinger", "a sheriff"),
        "goal": ("avenge a murdered brother", "defend the town", "drive cattle to Kansas"),
    },
}
_COMPANIONS = {  # secondary genres that often go with a primary one
    "Action": ("Thriller", "Science Fiction", "Crime", "Comedy"),
    "Comedy": ("Romance", "Drama", "Animation"),
    "Drama": ("Romance", "Crime", "Documentary"),
    "Romance": ("Comedy", "Drama"),
    "Horror": ("Thriller", "Fantasy"),
    "Science Fiction": ("Action", "Thriller", "Horror"),
    "Fantasy": ("Animation", "Action", "Romance"),
    "Thriller": ("Crime", "Drama", "Horror"),
    "Crime": ("Drama", "Thriller"),
    "Animation": ("Comedy", "Fantasy"),
    "Documentary": ("Drama",),
    "Western": ("Action", "Drama"),
}
_PLACES = ("Paris", "Tokyo", "Brooklyn", "the North", "Avalon", "Mars", "Texas", "Venice")
_SUBTITLES = ("Reckoning", "Resurrection", "The Return", "Legacy", "Rebirth", "Endgame")
_ROMAN = ("II", "III", "IV", "V", "VI")


def _base_title(rng: random.Random, genre: str) -> str:
    words = _GENRES[genre]
    adj, noun = rng.choice(words["adj"]), rng.choice(words["noun"])
    form = rng.randrange(5)
    if form == 0:
        return f"The {adj} {noun}"
    if form == 1:
        return f"{adj} {noun}"
    if form == 2:
        return f"{noun} in {rng.choice(_PLACES)}"
    if form == 3:
        return f"The {noun} of {rng.choice(_PLACES)}"
    second = rng.choice([w for w in words["noun"] if w != noun])
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
    genres = tuple(_GENRES)
    items: list[SyntheticItem] = []
    while len(items) < n:
        primary = rng.choice(genres)
        extra = rng.sample(_COMPANIONS[primary], k=min(rng.randrange(3), len(_COMPANIONS[primary])))
        item_genres = (primary, *extra)
        series = rng.random() < 0.25
        # Most franchises have one entry; a heavy tail has many sequels or seasons.
        size = min(int(rng.paretovariate(1.5)) + 1, 8) if rng.random() < 0.3 else 1
        base = _base_title(rng, primary)
        roman = rng.random() < 0.4
        year = min(2025 - 2 * size, max(1950, int(rng.gauss(2006, 13))))
        words = _GENRES[primary]
        for index in range(size):
            if len(items) == n:
                break
            runtime = rng.randint(22, 60) if series else rng.randint(80, 170)
            if primary == "Animation" and not series:
                runtime = rng.randint(75, 105)
            description = (
                f"{rng.choice(words['who']).capitalize()} must {rng.choice(words['goal'])}."
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
