"""Skills (SkillLibrary): recommendation strategies with usage and success statistics.

A skill is a weighting of the recommender's signals. Two kinds of evidence pick one:

- **Self-tests** (every title the household starts and enjoys): before the brain learns
  from it, each skill ranks that title among a sample of unseen ones, as it would have
  if asked a moment earlier. Every skill is scored on every test (full information), so
  the household's best weighting — how much the crowd's popularity helps *this*
  household, say — emerges within tens of titles, whether or not recommendations are
  ever shown. A decayed mean of the reciprocal rank; the best skill wins once
  ``SELF_TEST_MIN`` tests are in.
- **Offers** (recommendations shown, then watched or not): UCB1 per context, used until
  the self-tests have spoken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = [
    "SELF_TEST",
    "SELF_TESTED",
    "SELF_TEST_DECAY",
    "SELF_TEST_MIN",
    "SKILLS",
    "Skill",
    "SkillLibrary",
    "SkillStat",
]

#: The skills self-tests compare: they differ only in how much the crowd's popularity
#: counts, the one choice a household's evidence settles quickly (broader comparisons
#: over-fit a sampled test and lost ranking quality on the replays).
SELF_TESTED = ("continue", "personal")
#: The context under which self-test evidence is kept (one per household, not per hour).
SELF_TEST = "self-test"
#: Each test's weight relative to the one after it (a half-life of ~35 titles).
SELF_TEST_DECAY = 0.98
#: Tests (decayed count) before the self-tests choose the skill.
SELF_TEST_MIN = 5.0


@dataclass(frozen=True, slots=True)
class Skill:
    name: str
    description: str
    #: Weights of the recommender's signals (see ``omega.brain.recommend.SIGNALS``).
    weights: dict[str, float]


# ``recent`` is a mean kernel (mostly 0.0–0.5), ``popular`` a score in [0, 1] and ``era``
# minus years / 5; the rest are min-max scaled. The "continue" weights were chosen on the
# ml-latest-small replay (docs/results.md): the recent kernel, the crowd's popularity
# and the era carry most of what predicts the next title; the cell signals add little.
_CONTINUE = {
    "recent": 8.0,
    "era": 0.2,
    "instant": 0.0,
    "episodic": 0.0,
    "semantic": 0.05,
    "next": 0.02,
    "crowd": 0.01,
    "cowatch": 16.0,
    "popular": 1.0,
}

SKILLS: dict[str, Skill] = {
    s.name: s
    for s in (
        Skill("continue", "more like what is being watched now", _CONTINUE),
        Skill(
            "taste",
            "the household's long-term taste",
            {
                "recent": 4.0,
                "era": 0.1,
                "instant": 0.1,
                "episodic": 0.4,
                "semantic": 0.8,
                "next": 0.2,
                "crowd": 0.2,
                "cowatch": 8.0,
                "popular": 1.0,
            },
        ),
        Skill(
            "crowd",
            "what viewers with similar habits go on to enjoy",
            {
                "recent": 4.0,
                "era": 0.1,
                "instant": 0.1,
                "episodic": 0.1,
                "semantic": 0.1,
                "next": 1.0,
                "crowd": 0.6,
                "cowatch": 16.0,
                "popular": 1.0,
            },
        ),
        Skill(
            "explore",
            "well-liked titles outside the usual",
            {
                "recent": 2.0,
                "era": 0.05,
                "instant": 0.05,
                "episodic": 0.05,
                "semantic": 0.05,
                "next": 0.4,
                "crowd": 1.0,
                "cowatch": 4.0,
                "popular": 1.2,
            },
        ),
        # "continue" without the crowd's popularity; self-tests pick between the two.
        Skill(
            "personal",
            "this household's own viewing, whatever is popular",
            {**_CONTINUE, "popular": 0.0},
        ),
    )
}


@dataclass(slots=True)
class SkillStat:
    uses: float = 0.0
    successes: float = 0.0
    updated_at: float = 0.0

    @property
    def success_rate(self) -> float:
        return self.successes / self.uses if self.uses else 0.0


@dataclass(slots=True)
class SkillLibrary:
    stats: dict[tuple[str, str], SkillStat] = field(default_factory=dict)
    dirty: set[tuple[str, str]] = field(default_factory=set)

    def choose(self, context: str) -> Skill:
        """The self-tests' best skill once there are enough of them; before that, UCB1
        over the skills' record in this context, untried skills first."""
        tested = [(n, self.stats.get((n, SELF_TEST))) for n in SELF_TESTED]
        if all(stat is not None and stat.uses >= SELF_TEST_MIN for _, stat in tested):
            # max() keeps the first of equals: the declaration order breaks ties.
            name = max(tested, key=lambda pair: pair[1].success_rate if pair[1] else 0.0)[0]
            return SKILLS[name]
        total = sum(self.stats.get((n, context), SkillStat()).uses for n in SKILLS) + 1.0
        best, best_score = SKILLS["continue"], -math.inf
        for name, skill in SKILLS.items():
            stat = self.stats.get((name, context), SkillStat())
            if stat.uses < 1:
                score = 10.0 - list(SKILLS).index(name)  # deterministic order for untried
            else:
                score = stat.success_rate + math.sqrt(2 * math.log(total) / stat.uses)
            if score > best_score:
                best, best_score = skill, score
        return best

    def self_test(self, gains: dict[str, float], now: float) -> None:
        """Record one self-test: each skill's gain (reciprocal rank) on the same title."""
        for name, gain in gains.items():
            stat = self.stats.setdefault((name, SELF_TEST), SkillStat())
            stat.uses = stat.uses * SELF_TEST_DECAY + 1.0
            stat.successes = stat.successes * SELF_TEST_DECAY + gain
            stat.updated_at = now
            self.dirty.add((name, SELF_TEST))

    def record(self, name: str, context: str, success: bool, now: float) -> None:
        stat = self.stats.setdefault((name, context), SkillStat())
        stat.uses += 1
        stat.successes += 1.0 if success else 0.0
        stat.updated_at = now
        self.dirty.add((name, context))

    def rows(
        self, keys: set[tuple[str, str]] | None = None
    ) -> list[tuple[str, str, float, float, float]]:
        chosen = self.stats.keys() if keys is None else keys
        return [
            (
                n,
                c,
                self.stats[(n, c)].uses,
                self.stats[(n, c)].successes,
                self.stats[(n, c)].updated_at,
            )
            for n, c in chosen
            if (n, c) in self.stats
        ]

    def summary(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for (name, context), stat in self.stats.items():
            if context == SELF_TEST:
                tests = out.setdefault(name, {"uses": 0.0, "successes": 0.0})
                tests["self_test_mrr"] = round(stat.success_rate, 4)
                continue
            entry = out.setdefault(name, {"uses": 0.0, "successes": 0.0})
            entry["uses"] += stat.uses
            entry["successes"] += stat.successes
        return out
