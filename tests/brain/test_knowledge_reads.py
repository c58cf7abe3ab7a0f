"""Cell knowledge keeps its answers between changes (a home screen redrawn asks again):
after any change, what it answers is what a knowledge that was never asked answers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from omega.brain.config import ConflictStrategy
from omega.brain.knowledge import CellKnowledge
from omega.brain.patterns import PatternStat
from omega.protocol.messages import ConsolidatedPattern, PatternContext, Trend

K = 8
Change = Callable[[CellKnowledge], None]


def _changes(seed: int) -> list[Change]:
    """A random run of every kind of change: local patterns learned and forgotten, local
    rebuilt, and releases of crowd patterns and trends."""
    rng = np.random.default_rng(seed)
    tasks = ("recommendation", "preference", "behaviour")
    stats: list[PatternStat] = []
    out: list[Change] = []
    for step in range(40):
        roll = rng.random()
        if roll < 0.55:
            task = tasks[int(rng.integers(3))]
            cells = tuple(int(c) for c in rng.integers(0, K, 2 if task == "recommendation" else 1))
            key = (task, cells, "any", "any")
            stat = PatternStat(key, float(rng.integers(0, 9)), int(rng.integers(1, 12)))
            stats.append(stat)
            out.append(lambda kn, stat=stat: kn.learn_local(stat))
        elif roll < 0.7 and stats:
            gone = [stats[int(i)].key for i in rng.choice(len(stats), 2)]
            out.append(lambda kn, gone=gone: kn.forget_local(gone))
        elif roll < 0.8:
            kept = list(stats)
            out.append(lambda kn, kept=kept: kn.rebuild_local(kept))
        else:
            patterns = [
                ConsolidatedPattern(
                    id=f"c{step}-{i}",
                    task=("recommendation", "preference", "behaviour")[i % 3],
                    cells=(int(rng.integers(K)), int(rng.integers(K)))
                    if i % 3 == 0
                    else (int(rng.integers(K)),),
                    context=PatternContext(time_bucket=("evening", "any")[i % 2]),
                    success_rate=float(rng.uniform(0.3, 1.0)),
                    support=int(rng.integers(1, 20)),
                    viewers=3,
                    weight=float(rng.uniform(0.1, 2.0)),
                    version=step,
                )
                for i in range(12)
            ]
            trends = [Trend(cell=int(rng.integers(K)), score=float(rng.random()))]
            out.append(lambda kn, p=patterns, t=trends: kn.rebuild_collective(p, t))
    return out


def _answers(knowledge: CellKnowledge) -> list[bytes]:
    reads = [
        *knowledge.next_scores([(1, 1.0), (4, 0.8), (1, 0.5)]),
        *knowledge.next_scores([(2, 1.0)]),
        knowledge.next_blend([(1, 1.0), (4, 0.8), (1, 0.5)], 0.5),
        knowledge.next_blend([(2, 1.0), (9, 0.5)], 0.25),  # cell 9 is off the codebook
        knowledge.crowd_scores("evening", "weekday"),
        knowledge.crowd_scores("night", "weekend"),
        knowledge.avoid_scores(),
    ]
    return [r.tobytes() for r in reads]


@pytest.mark.parametrize("strategy", ["merge", "quality-wins", "viewer-wins", "omega-wins"])
@pytest.mark.parametrize("seed", range(3))
def test_answers_after_any_change_are_those_of_a_knowledge_never_asked(
    strategy: ConflictStrategy, seed: int
) -> None:
    changes = _changes(seed)
    asked = CellKnowledge(K, strategy=strategy)
    for done, change in enumerate(changes, start=1):
        change(asked)
        fresh = CellKnowledge(K, strategy=strategy)
        for earlier in changes[:done]:
            earlier(fresh)
        assert _answers(asked) == _answers(fresh)
        assert _answers(asked) == _answers(fresh)  # the kept answers, asked again


def test_kept_answers_cannot_be_changed_by_a_reader() -> None:
    knowledge = CellKnowledge(K)
    knowledge.learn_local(PatternStat(("behaviour", (2,), "any", "any"), 1.0, 4))
    avoid = knowledge.avoid_scores()
    with pytest.raises(ValueError, match="read-only"):
        avoid[2] = 0.0
    assert knowledge.avoid_scores() is avoid


def test_the_blend_is_the_crowds_next_scores_plus_a_share_of_the_devices() -> None:
    knowledge = CellKnowledge(K)
    for change in _changes(1):
        change(knowledge)
    recent = [(3, 1.0), (0, 0.8), (3, 0.64)]
    crowd, local = knowledge.next_scores(recent)
    blend = knowledge.next_blend(recent, 0.5)
    assert blend.dtype == np.float32
    assert blend.tobytes() == (crowd + np.float32(0.5) * local).tobytes()
    assert knowledge.next_blend(recent, 0.5) is blend
    assert not blend.flags.writeable
