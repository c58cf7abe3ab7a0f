"""Synthetic viewing logs with learnable structure, as a ``Dataset`` the fleet can replay.

:func:`synthetic_dataset` watches a :func:`~omega.sim.synthetic.synthetic_titles` catalog
through made-up viewers, deterministic for a seed:

- **Taste**: each viewer favours 1–3 genres (Dirichlet weights) and a few franchises in
  them; taste matches are rated high, mismatches low and often abandoned early.
- **Habits**: an evening prime-time session on most days (starts around 20:00 UTC), weekend
  afternoons for some, and a few late-night viewers whose sessions start 22:30–01:30.
  Clock times are UTC (the brain's default offset); day 0 is Monday 2026-01-05.
- **Sequences**: after part N of a franchise a viewer who liked it usually watches part
  N + 1 next; binge sessions hold 2–5 titles of one genre; starting a franchise mid-way is
  rare.
- **Popularity**: item appeal is heavy tailed; one pick in ten is one of the top 1% hits,
  so the biggest hits reach a third to half of the viewers (with the defaults).

Each title is watched at most once per viewer. A rating's timestamp is when the viewing
started; the next title starts after the watched part of the previous one plus a short
break, so a viewer's timestamps strictly increase. Activity is per day (about 1–4
titles, 2.3 on average), so the default 14 days give roughly 15–55 interactions per
viewer (mean about 33); fewer days give shorter logs.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omega.errors import ConfigError
from omega.sim.datasets import Dataset, Item
from omega.sim.synthetic import SyntheticItem, synthetic_titles

__all__ = ["START_TS", "synthetic_dataset"]

#: 2026-01-05 00:00 UTC, a Monday: the first simulated day.
START_TS = 1_767_571_200
_DAY = 86_400
_HOUR = 3_600


@dataclass(frozen=True, slots=True)
class _Catalog:
    items: list[SyntheticItem]
    next_part: list[int]  # the franchise's next item, or -1
    prev_part: list[int]  # the franchise's previous item, or -1
    head: list[int]  # the franchise's first item
    genres: list[str]  # primary genres present, most common first
    pools: dict[str, tuple[list[int], list[float]]]  # genre → items, cumulative appeal
    everyone: tuple[list[int], list[float]]
    hits: tuple[list[int], list[float]]


@dataclass(frozen=True, slots=True)
class _Viewer:
    taste: dict[str, float]  # genre → weight, the favourite at 1.0
    genre_names: list[str]
    genre_cum: list[float]
    franchises: list[int]  # favourite franchise heads
    mainstream: float  # chance a pick follows appeal rather than a uniform draw
    binge: float
    evening: float
    weekend_afternoon: float
    late_night: bool


def _member_of(item: SyntheticItem, head: SyntheticItem, prev: SyntheticItem) -> bool:
    """``synthetic_titles`` writes a franchise's parts consecutively, each titled after the
    first part (``Base 2``, ``Base: Season 2``), with the same genres and later years."""
    base = head.title
    return (
        item.genres == head.genres
        and item.year > prev.year
        and item.title.startswith(base)
        and item.title[len(base) : len(base) + 1] in (" ", ":", ",")
    )


def _pool(items: list[int], appeal: list[float]) -> tuple[list[int], list[float]]:
    return items, list(itertools.accumulate(appeal[i] for i in items))


def _catalog(items: list[SyntheticItem], rng: random.Random) -> _Catalog:
    n = len(items)
    head, prev_part, next_part = list(range(n)), [-1] * n, [-1] * n
    for i in range(1, n):
        if _member_of(items[i], items[head[i - 1]], items[i - 1]):
            head[i], prev_part[i], next_part[i - 1] = head[i - 1], i - 1, i
    franchise_appeal = {h: rng.lognormvariate(0.0, 1.2) for h in sorted(set(head))}
    # Later parts draw fewer viewers on their own; most arrive through the earlier part.
    depth = [0] * n
    for i in range(n):
        depth[i] = depth[i - 1] + 1 if prev_part[i] >= 0 else 0
    appeal = [franchise_appeal[head[i]] * 0.6 ** depth[i] for i in range(n)]
    by_genre: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        by_genre.setdefault(item.genres[0], []).append(i)
    hits = sorted(range(n), key=lambda i: (-appeal[i], i))[: max(3, n // 100)]
    return _Catalog(
        items=items,
        next_part=next_part,
        prev_part=prev_part,
        head=head,
        genres=sorted(by_genre, key=lambda g: (-len(by_genre[g]), g)),
        pools={g: _pool(members, appeal) for g, members in by_genre.items()},
        everyone=_pool(list(range(n)), appeal),
        hits=_pool(hits, appeal),
    )


def _viewer(cat: _Catalog, rng: random.Random) -> _Viewer:
    count = min(len(cat.genres), rng.choice((1, 2, 2, 3)))
    favourites = rng.sample(cat.genres, count)
    weights = sorted((rng.gammavariate(1.5, 1.0) for _ in favourites), reverse=True)
    taste = {g: w / weights[0] for g, w in zip(favourites, weights, strict=True)}
    heads = sorted({cat.head[i] for g in favourites for i in cat.pools[g][0]})
    series = [h for h in heads if cat.next_part[h] >= 0]
    return _Viewer(
        taste=taste,
        genre_names=favourites,
        genre_cum=list(itertools.accumulate(weights)),
        franchises=rng.sample(series, min(len(series), rng.randint(2, 4))),
        mainstream=rng.uniform(0.5, 0.95),
        binge=rng.uniform(0.25, 0.65),
        evening=rng.uniform(0.65, 1.0),
        weekend_afternoon=rng.uniform(0.1, 0.7),
        late_night=rng.random() < 0.12,
    )


def _draw(
    pool: tuple[list[int], list[float]],
    rng: random.Random,
    seen: set[int],
    cat: _Catalog,
    v: _Viewer,
) -> int | None:
    items, cum = pool
    for _ in range(16):
        if rng.random() < v.mainstream:
            item = items[min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(items) - 1)]
        else:
            item = items[rng.randrange(len(items))]
        if item in seen:
            continue
        earlier = cat.prev_part[item]
        if earlier >= 0 and earlier not in seen and rng.random() < 0.9:
            continue  # rarely start a franchise in the middle
        return item
    return None


def _next_title(
    cat: _Catalog,
    v: _Viewer,
    rng: random.Random,
    seen: set[int],
    last: int,
    liked: bool,
    genre: str,
) -> int | None:
    if last >= 0:
        following = cat.next_part[last]
        if following >= 0 and following not in seen and rng.random() < (0.85 if liked else 0.1):
            return following
    roll = rng.random()
    if roll < 0.08 and v.franchises:
        part = rng.choice(v.franchises)
        while part >= 0 and part in seen:
            part = cat.next_part[part]
        if part >= 0:
            return part
    pool = cat.hits if roll < 0.18 else cat.pools[genre]
    item = _draw(pool, rng, seen, cat, v)
    if item is None:
        item = _draw(cat.everyone, rng, seen, cat, v)
    if item is None:  # nearly everything seen: the first unseen title, if any
        item = next((i for i in range(len(cat.items)) if i not in seen), None)
    return item


def _rate(cat: _Catalog, v: _Viewer, rng: random.Random, item: int) -> tuple[float, float]:
    """(stars, fraction watched): taste matches are finished and rated high."""
    genres = cat.items[item].genres
    affinity = v.taste.get(genres[0], 0.0) + 0.3 * sum(g in v.taste for g in genres[1:])
    if cat.head[item] in v.franchises:
        affinity = 1.0
    affinity = min(1.0, affinity)
    if rng.random() < 0.04 + 0.45 * (1.0 - affinity):
        return rng.choice((0.5, 1.0, 1.5, 2.0)), rng.uniform(0.03, 0.3)
    stars = min(5.0, max(0.5, round(2 * rng.gauss(2.2 + 2.6 * affinity, 0.6)) / 2))
    return stars, rng.uniform(0.92, 1.0) if stars >= 4.0 else rng.uniform(0.5, 0.95)


def _sessions(v: _Viewer, rng: random.Random, days: int) -> list[tuple[int, bool]]:
    """(start timestamp, binge?) of each viewing session, in time order."""
    end = START_TS + days * _DAY
    starts: list[tuple[int, bool]] = []
    for day in range(days):
        midnight = START_TS + day * _DAY
        weekend = day % 7 >= 5
        if rng.random() < (v.weekend_afternoon if weekend else 0.05):
            starts.append((midnight + int(rng.uniform(13.0, 16.5) * _HOUR), rng.random() < 0.6))
        if rng.random() < v.evening:
            hour = rng.uniform(22.5, 25.5) if v.late_night else min(22.0, rng.gauss(20.0, 0.9))
            starts.append((midnight + int(max(17.5, hour) * _HOUR), rng.random() < v.binge))
    starts = [s for s in starts if s[0] < end]
    if not starts:  # everyone watches at least one evening
        starts.append((START_TS + rng.randrange(days) * _DAY + int(20.5 * _HOUR), False))
    return sorted(starts)


def _watch(
    cat: _Catalog, v: _Viewer, rng: random.Random, days: int
) -> list[tuple[int, int, float]]:
    """One viewer's (timestamp, item, stars), oldest first."""
    end = START_TS + days * _DAY
    events: list[tuple[int, int, float]] = []
    seen: set[int] = set()
    last, liked, t = -1, False, 0
    for start, binge in _sessions(v, rng, days):
        t = max(start, t + 600)
        length = (
            rng.randint(2, 5)
            if binge
            else 1 + (rng.random() < 0.7) + (rng.random() < 0.4) + (rng.random() < 0.1)
        )
        genre = v.genre_names[bisect.bisect_right(v.genre_cum, rng.random() * v.genre_cum[-1])]
        for _ in range(length):
            if t >= end or t > start + 4 * _HOUR or len(seen) == len(cat.items):
                break
            if not binge and rng.random() < 0.15:
                genre = rng.choice(cat.genres)  # an occasional look outside the usual
            item = _next_title(cat, v, rng, seen, last, liked, genre)
            if item is None:
                break
            stars, fraction = _rate(cat, v, rng, item)
            events.append((t, item, stars))
            seen.add(item)
            last, liked = item, stars >= 3.5
            t += int(cat.items[item].runtime_min * 60 * fraction) + rng.randint(60, 600)
    return events


def synthetic_dataset(
    *, titles: int = 1500, viewers: int = 200, days: int = 14, seed: int = 0
) -> Dataset:
    """A made-up viewing log over ``days`` days from 2026-01-05 00:00 UTC, as a ``Dataset``.

    Viewer ids are ``"1"`` … ``str(viewers)``; item ids ``syn-000000`` … whose number is the
    item's key; rows are ordered by viewer, then time. Every viewer has at least one rating.
    """
    if titles < 1 or viewers < 1 or days < 1:
        raise ConfigError(
            f"need titles, viewers and days >= 1; got titles={titles}, "
            f"viewers={viewers}, days={days}"
        )
    catalog_items = synthetic_titles(titles, seed=seed)
    rng = random.Random(f"omega-viewers:{seed}")
    cat = _catalog(catalog_items, rng)
    users: list[int] = []
    rows: list[tuple[int, int, float]] = []
    for u in range(viewers):
        events = _watch(cat, _viewer(cat, rng), rng, days)
        users.extend([u] * len(events))
        rows.extend(events)
    items = tuple(Item(s.item_id, s.title, s.genres, s.year, ()) for s in catalog_items)
    user_ids = tuple(str(u + 1) for u in range(viewers))
    return Dataset(
        path=Path(f"synthetic:titles={titles},viewers={viewers},days={days},seed={seed}"),
        format="synthetic",
        items=items,
        user_ids=user_ids,
        users=np.asarray(users, dtype=np.int32),
        items_idx=np.asarray([r[1] for r in rows], dtype=np.int32),
        ratings=np.asarray([r[2] for r in rows], dtype=np.float32),
        timestamps=np.asarray([r[0] for r in rows], dtype=np.int64),
        item_keys=np.asarray([int(s.item_id.rpartition("-")[2]) for s in catalog_items], np.int64),
        item_index={item.item_id: i for i, item in enumerate(items)},
        user_index={user: u for u, user in enumerate(user_ids)},
    )
