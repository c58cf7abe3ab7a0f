"""Why a title is recommended: the signal that contributed most to its score, in words,
citing only what this household did (or, for co-watch, what the fleet's released table
says about a title the household watched).

:func:`reason_for` words one title's reason from its :class:`Evidence` (:func:`explain`);
:func:`reasons` words a whole list the same way, looking up only the evidence each
reason names: on a home screen most reasons cite a recent title or a co-watch title,
few a genre.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from omega.brain.catalog import Catalog
from omega.brain.cowatch import CowatchMatrix, Edges
from omega.brain.skills import Skill

__all__ = ["Evidence", "explain", "reason_for", "reasons", "top_signal"]

#: The signals whose reason names the recent title most like the recommended one.
_CITE_RECENT = frozenset({"recent", "instant", "episodic", "next"})


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a reason may cite for one title, all from this household's own viewing: the
    recent title most like it, and a genre it shares with the recent titles (the one most
    of them have) with how many of them have it."""

    recent_title: str | None = None
    genre: str | None = None
    genre_count: int = 0
    recent_count: int = 0
    #: The household title whose released co-watch neighbours include this one most.
    cowatch_title: str | None = None


def top_signal(signals: Mapping[str, float], skill: Skill) -> tuple[str, float]:
    """The signal contributing most under ``skill`` (the first of equals) and its
    contribution."""
    top, best = "", 0.0
    for name, value in signals.items():
        contribution = skill.weights.get(name, 0.0) * value
        if not top or contribution > best:
            top, best = name, contribution
    return top, best


def reason_for(
    signals: Mapping[str, float], skill: Skill, *, evidence: Evidence, time_bucket: str
) -> str:
    top, best = top_signal(signals, skill)
    return _worded(top, best, evidence, time_bucket)


def _worded(top: str, best: float, evidence: Evidence, time_bucket: str) -> str:
    recent_title = evidence.recent_title
    if best <= 0:
        return "a varied pick to get to know your taste"
    if top in ("recent", "instant", "episodic") and recent_title:
        return f"because you watched {recent_title}"
    if top == "semantic":
        if evidence.genre is None:
            return "matches your long-term taste"
        return (
            f"matches your taste for {evidence.genre} ({evidence.genre_count} of the last "
            f"{evidence.recent_count} titles you started)"
        )
    if top == "cowatch" and evidence.cowatch_title:
        return f"viewers who watched {evidence.cowatch_title} went on to watch this"
    if top == "next" and recent_title:
        return f"viewers who watched {recent_title} often watch this next"
    if top == "crowd":
        return f"popular with viewers like you in the {time_bucket}"
    if top == "popular":
        return "widely watched right now"
    return "picked for you"


def explain(
    catalog: Catalog,
    rows: Sequence[int],
    recent: Sequence[tuple[int, float]],
    *,
    cowatch: Edges | None = None,
) -> list[Evidence]:
    """For each row, the :class:`Evidence` a reason may cite. A genre is named only when
    the household started titles of it lately: never the candidate's own genre alone.
    With the co-watch ``Edges`` a request scored, the household title that most brought
    each row up."""
    if not recent or not rows:
        return [Evidence() for _ in rows]
    nearest = _nearest_recent(catalog, rows, recent)
    genres = _shared_genres(catalog, rows, recent)
    sources = CowatchMatrix.sources(cowatch, rows) if cowatch is not None else [None] * len(rows)
    titles = catalog.titles
    return [
        Evidence(
            recent_title=title,
            genre=genre,
            genre_count=count,
            recent_count=len(recent),
            cowatch_title=None if source is None else titles[source],
        )
        for title, (genre, count), source in zip(nearest, genres, sources, strict=True)
    ]


def reasons(
    catalog: Catalog,
    rows: Sequence[int],
    values: Mapping[str, Sequence[float]],
    skill: Skill,
    *,
    recent: Sequence[tuple[int, float]],
    cowatch: Edges | None,
    time_bucket: str,
) -> list[str]:
    """``reason_for`` each row (``values``: each signal's value per row), with the
    evidence :func:`explain` gives — looking up only what each reason names."""
    if not rows:
        return []
    names = list(values)
    # Each contribution is the same double product reason_for takes, and argmax keeps the
    # first of equals as it does: one array operation instead of a loop per title.
    weights = np.array([skill.weights.get(name, 0.0) for name in names], dtype=np.float64)
    contributions = np.array([values[name] for name in names], dtype=np.float64)
    contributions *= weights[:, None]
    tops = contributions.argmax(axis=0)
    bests = contributions[tops, np.arange(len(rows))].tolist()
    cited = [names[t] if best > 0 else "" for t, best in zip(tops.tolist(), bests, strict=True)]
    if not recent:
        return [
            _worded(top, best, Evidence(), time_bucket)
            for top, best in zip(cited, bests, strict=True)
        ]
    nearest: Sequence[str | None] = [None] * len(rows)
    if not _CITE_RECENT.isdisjoint(cited):
        nearest = _nearest_recent(catalog, rows, recent)  # every row: the same product
    sources: dict[int, int | None] = {}
    if cowatch is not None and "cowatch" in cited:
        wanted = [row for row, top in zip(rows, cited, strict=True) if top == "cowatch"]
        sources = dict(zip(wanted, CowatchMatrix.sources(cowatch, wanted), strict=True))
    out = []
    titles = catalog.titles
    for i, (row, top, best) in enumerate(zip(rows, cited, bests, strict=True)):
        if top == "semantic":
            ((genre, count),) = _shared_genres(catalog, [row], recent)
            evidence = Evidence(genre=genre, genre_count=count, recent_count=len(recent))
        elif top == "cowatch":
            source = sources.get(row)
            evidence = Evidence(cowatch_title=None if source is None else titles[source])
        else:
            evidence = Evidence(recent_title=nearest[i])
        out.append(_worded(top, best, evidence, time_bucket))
    return out


def _nearest_recent(
    catalog: Catalog, rows: Sequence[int], recent: Sequence[tuple[int, float]]
) -> list[str]:
    """For each row, the title of the recent row whose vector is closest to it."""
    recent_rows = [r for r, _ in recent]
    nearest = np.argmax(catalog.matrix[list(rows)] @ catalog.matrix[recent_rows].T, axis=1)
    titles = catalog.titles
    return [titles[recent_rows[j]] for j in nearest.tolist()]


def _shared_genres(
    catalog: Catalog, rows: Sequence[int], recent: Sequence[tuple[int, float]]
) -> list[tuple[str | None, int]]:
    """For each row, the genre of its own the recent titles have most (the first of
    equals) and how many of them have it; (None, 0) when they share none."""
    genres = catalog.genres
    watched = Counter(g for r, _ in recent for g in set(genres[r]))
    out: list[tuple[str | None, int]] = []
    for row in rows:
        shared = [g for g in genres[row] if g in watched]
        genre = max(shared, key=watched.__getitem__) if shared else None
        out.append((genre, watched[genre] if genre else 0))
    return out
