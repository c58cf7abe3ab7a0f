"""The brain's seven feedback loops, each on its time scale, and what drives each one.

The design names seven loops; on a TV each is either a real operation of the brain, or
deliberately empty for a reason given here (and in ``docs/device.md``):

=============== ======== =============== ==================================================
loop            scale    driven by       what runs
=============== ======== =============== ==================================================
reflexive       100 ms   each event      ``track_*``: the episode commits, the learner
                                         updates tiers, patterns and cell knowledge, a
                                         shown list is credited, an enjoyed title is
                                         self-tested (well under 100 ms, in the caller)
reactive        5 s      the tick        ``Brain.tick``: a session idle past
                                         ``session_gap`` ends (the instant tier clears),
                                         instead of at the next event
adaptive        30 min   the sync        ``omega.sync.DeviceRuntime``: push the outbox,
                                         pull the release (collective tier, crowd
                                         knowledge, popularity)
deliberative    24 h     the tick        ``Brain.consolidate(weekly=False)``: flush, prune
                                         stale and surplus patterns (removals queued)
evolutionary    7 d      the tick        ``Brain.consolidate()``: also prune episodes past
                                         ``episode_retention``
transformative  1 y      the             ``Brain.set_codebook``: new content cells; every
                         constellation   pattern is relearned from the episodes. The
                                         runtime checks at start and after a rejected push
transcendent    10 y     nothing         deliberately empty: a TV lives about as long; what
                                         spans a decade is the constellation's history
=============== ======== =============== ==================================================

What changes on the yearly scale otherwise (the evolutionary tier's one-year half-life,
the ε budget's 365-day window) is decay computed when read: no step needs scheduling.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from omega.brain.config import DAY, HOUR

__all__ = ["LOOPS", "META_KEYS", "TICK_S", "Loop", "LoopDriver", "LoopTimes", "loop_report"]

LoopDriver = Literal["event", "tick", "sync", "constellation", "nothing"]


@dataclass(frozen=True, slots=True)
class Loop:
    name: str
    #: The loop's time scale (seconds): how often it runs when it is driven by a clock.
    period_s: float
    driver: LoopDriver
    does: str


LOOPS: tuple[Loop, ...] = (
    Loop("reflexive", 0.1, "event", "learn from each tracked event (tiers, patterns, skills)"),
    Loop("reactive", 5.0, "tick", "end a viewing session once idle past session_gap"),
    Loop("adaptive", 0.5 * HOUR, "sync", "push the outbox, pull the constellation's release"),
    Loop("deliberative", DAY, "tick", "flush; prune stale and surplus patterns"),
    Loop("evolutionary", 7 * DAY, "tick", "also prune episodes past the retention"),
    Loop("transformative", 365 * DAY, "constellation", "adopt a new codebook; relearn"),
    Loop("transcendent", 3650 * DAY, "nothing", "nothing: beyond a TV's lifetime"),
)
#: How often a runtime should call ``Brain.tick``: the reactive loop's period.
TICK_S = LOOPS[1].period_s


#: Where ``brain.db``'s meta table keeps the loops' times (the first two predate them).
META_KEYS = {
    "deliberative": "consolidated_daily",
    "evolutionary": "consolidated_weekly",
    "transformative": "codebook_adopted_at",
    "since": "loops_started",
}


@dataclass(slots=True)
class LoopTimes:
    """When the clock-driven loops last ran (0: never), and which are due.

    The slow loops are due a period after they last ran, or after ``since`` — the first
    time the brain looked — when they never have. ``since`` is stored: a TV restarted
    every day would otherwise start the clock afresh each time and never consolidate.
    """

    since: float = 0.0
    daily: float = 0.0
    weekly: float = 0.0
    reacted: float = 0.0  # the reactive loop, every few seconds: kept in memory only

    @classmethod
    def restore(cls, meta: Callable[[str], str | None]) -> LoopTimes:
        def read(key: str) -> float:
            return float(meta(META_KEYS[key]) or 0)

        return cls(since=read("since"), daily=read("deliberative"), weekly=read("evolutionary"))

    @property
    def started(self) -> bool:
        return bool(self.since or self.daily)

    def due(self, now: float) -> list[str]:
        """The consolidation loops due at ``now``: none, the daily one, or both."""
        if now - (self.daily or self.since) < DAY:
            return []
        if now - (self.weekly or self.since) >= 7 * DAY:
            return ["deliberative", "evolutionary"]
        return ["deliberative"]


def loop_report(last_ran: Mapping[str, float | None]) -> dict[str, dict[str, object]]:
    """Each loop's scale, driver and when it last ran (None: not yet, or never)."""
    return {
        loop.name: {
            "period_s": loop.period_s,
            "driver": loop.driver,
            "does": loop.does,
            "last_ran": last_ran.get(loop.name),
        }
        for loop in LOOPS
    }
