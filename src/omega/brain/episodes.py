"""Episodes (ReflexionMemory): one per interaction, with context, reward and a critique.

Reward is engagement in [0, 1]; success means reward ≥ 0.7. Validation happens here,
before anything is stored, so bad input never leaves a trace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from omega.errors import InputError

__all__ = [
    "SUCCESS_THRESHOLD",
    "Context",
    "DayType",
    "Episode",
    "EpisodeRow",
    "EventKind",
    "TimeBucket",
    "Tracked",
    "browse_episode",
    "context_at",
    "rating_episode",
    "search_episode",
    "skip_episode",
    "view_episode",
]

SUCCESS_THRESHOLD = 0.7

EventKind = Literal["view", "skip", "rating", "search", "browse"]
TimeBucket = Literal["morning", "afternoon", "evening", "night"]
DayType = Literal["weekday", "weekend"]


@dataclass(frozen=True, slots=True)
class Context:
    """When something happens: the recommender and patterns condition on it."""

    time_bucket: TimeBucket
    day_type: DayType
    session_id: str = ""


def context_at(ts: float, session_id: str = "", utc_offset_hours: float = 0.0) -> Context:
    local = datetime.fromtimestamp(ts + utc_offset_hours * 3600, tz=UTC)
    hour = local.hour
    bucket: TimeBucket
    if 5 <= hour < 12:
        bucket = "morning"
    elif 12 <= hour < 17:
        bucket = "afternoon"
    elif 17 <= hour < 23:
        bucket = "evening"
    else:
        bucket = "night"
    day: DayType = "weekend" if local.weekday() >= 5 else "weekday"
    return Context(time_bucket=bucket, day_type=day, session_id=session_id)


@dataclass(frozen=True, slots=True)
class Episode:
    kind: EventKind
    reward: float
    critique: str
    item_id: str | None = None
    detail: dict[str, object] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.reward >= SUCCESS_THRESHOLD


@dataclass(frozen=True, slots=True)
class EpisodeRow:
    """An episode as stored: what was tracked, when, in which session and context."""

    id: int
    ts: float
    kind: str
    item_key: int | None
    session_id: str
    time_bucket: str
    day_type: str
    reward: float
    success: bool
    critique: str
    detail: dict[str, object]


def _finite(name: str, value: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a number, got {value!r}", param=name) from exc
    if not math.isfinite(number):
        raise InputError(f"{name} must be finite, got {value!r}", param=name)
    return number


def view_episode(
    item_id: str,
    *,
    watch_fraction: float | None = None,
    duration_s: float | None = None,
    runtime_s: float | None = None,
    completed: bool = False,
) -> Episode:
    """A view. Give ``watch_fraction`` in [0, 1], or ``duration_s`` (with the item's runtime)."""
    if watch_fraction is None and duration_s is None:
        if not completed:
            raise InputError("a view needs watch_fraction, duration_s or completed=True")
        fraction = 1.0
    elif watch_fraction is not None:
        fraction = _finite("watch_fraction", watch_fraction)
        if not 0.0 <= fraction <= 1.0:
            raise InputError(
                f"watch_fraction must be within [0, 1], got {fraction}", param="watch_fraction"
            )
    else:
        duration = _finite("duration_s", duration_s)  # type: ignore[arg-type]
        if duration < 0:
            raise InputError(f"duration_s must not be negative, got {duration}", param="duration_s")
        runtime = _finite("runtime_s", runtime_s) if runtime_s else 90 * 60.0
        fraction = min(1.0, duration / runtime) if runtime > 0 else 1.0
    completed = bool(completed)
    if completed:
        fraction = max(fraction, 0.95)
    # Completion is the strongest signal; a bare start (< 10%) reads as a mild rejection.
    reward = min(1.0, 0.1 + 0.85 * fraction + (0.05 if completed else 0.0))
    pct = round(fraction * 100)
    if reward >= SUCCESS_THRESHOLD:
        critique = f"watched {pct}% — good recommendation"
    elif fraction < 0.1:
        critique = f"abandoned after {pct}% — poor match"
    else:
        critique = f"watched {pct}% — partial interest"
    return Episode(
        "view", reward, critique, item_id, {"fraction": fraction, "completed": completed}
    )


def skip_episode(item_id: str, *, at_seconds: float = 0.0) -> Episode:
    at = _finite("at_seconds", at_seconds)
    if at < 0:
        raise InputError(f"at_seconds must not be negative, got {at}", param="at_seconds")
    # Skipping in the first minutes says more than skipping late (credits, a break).
    reward = 0.0 if at < 120 else min(0.3, at / 3600.0)
    critique = f"skipped at {at:.0f}s — poor recommendation"
    return Episode("skip", reward, critique, item_id, {"at_seconds": at})


def rating_episode(item_id: str, *, stars: float) -> Episode:
    value = _finite("stars", stars)
    if not 0.5 <= value <= 5.0:
        raise InputError(f"stars must be within [0.5, 5], got {value}", param="stars")
    reward = (value - 0.5) / 4.5
    verdict = "loved it" if value >= 4 else "liked it" if value >= 3 else "disliked it"
    return Episode("rating", reward, f"rated {value:g}★ — {verdict}", item_id, {"stars": value})


def search_episode(query: str, *, results: list[str], selected: str | None) -> Episode:
    if not isinstance(query, str) or not query.strip():
        raise InputError("a search needs a non-empty query")
    if len(query) > 500:
        raise InputError("search query longer than 500 characters")
    if selected is not None and selected not in results:
        raise InputError(f"selected item {selected!r} is not among the search results")
    if selected is not None:
        rank = results.index(selected)
        reward = max(0.5, 1.0 - 0.05 * rank)
        critique = f"found it at position {rank + 1} — search helped"
    else:
        reward, critique = 0.1, "searched and chose nothing — results missed"
    detail: dict[str, object] = {"query": query.strip(), "results": len(results)}
    return Episode("search", reward, critique, selected, detail)


def browse_episode(items: list[str]) -> Episode:
    if not items:
        raise InputError("a browse needs at least one item")
    return Episode(
        "browse", 0.2, f"browsed {len(items)} titles without choosing", None, {"items": items}
    )


@dataclass(frozen=True, slots=True)
class Tracked:
    """What tracking an event stored."""

    episode_id: int
    kind: str
    reward: float
    success: bool
    critique: str
    context: Context
