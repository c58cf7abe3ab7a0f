"""A fixed-seed fleet with one shared taste, and the attacks of issue 3.

Honest viewers share a ground-truth taste: 20 source cells, each followed by one of three
successor cells (probabilities 0.6 / 0.3 / 0.1). Each honest viewer pushes the transitions
it learned from 4 sources, preferences for what it liked, and — for 40% of them — a
behaviour pattern saying it abandons cell X, a title pushed on everyone's home screen that
most who try it quit. Attackers are a third of the fleet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from omega.federation import FederationConfig, consolidate
from omega.protocol.messages import ConsolidatedPattern, Pattern, PatternContext
from omega.storage.base import LivePattern

NOW = 1_750_000_000.0
K = 64
X = 63  # the cell "promote item X" attackers push
UNSEEN = 62  # a cell no honest viewer has an opinion on
SOURCES = list(range(20))
CONTEXTS = (
    PatternContext(),
    PatternContext(time_bucket="evening"),
    PatternContext(time_bucket="evening", day_type="weekend"),
    PatternContext(time_bucket="morning", day_type="weekday"),
)
ATTACKS = ("sign_flip", "scaled", "constant", "promote_x", "promote_unseen")


@dataclass(frozen=True)
class World:
    centroids: np.ndarray
    successors: dict[int, list[int]]


def make_world(seed: int) -> World:
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(K, 64))
    successors = {a: [int(b) for b in rng.choice(range(20, 60), 3, replace=False)] for a in SOURCES}
    return World(centroids, successors)


def honest_patterns(rng: np.random.Generator, world: World, *, abandon_x: bool) -> list[Pattern]:
    context = CONTEXTS[int(rng.integers(len(CONTEXTS)))]
    out: list[Pattern] = []
    for a in rng.choice(SOURCES, 4, replace=False):
        b = world.successors[int(a)][int(rng.choice(3, p=[0.6, 0.3, 0.1]))]
        for task, cells in (("recommendation", (int(a), b)), ("preference", (b,))):
            out.append(
                Pattern(
                    id=f"{task}-{cells}",
                    task=task,  # type: ignore[arg-type]
                    cells=cells,
                    context=context,
                    success_rate=float(np.clip(rng.beta(17, 3), 0.7, 1.0)),
                    support=int(rng.integers(3, 41)),
                )
            )
    if abandon_x and rng.random() < 0.4:
        out.append(
            Pattern(
                id="behaviour-x",
                task="behaviour",
                cells=(X,),
                context=context,
                success_rate=float(rng.uniform(0.02, 0.25)),
                support=int(rng.integers(3, 20)),
            )
        )
    return list({p.id: p for p in out}.values())


def attacker_patterns(rng: np.random.Generator, world: World, attack: str) -> list[Pattern]:
    base = honest_patterns(rng, world, abandon_x=False)
    if attack == "sign_flip":
        return [_with(p, success_rate=1.0 - p.success_rate) for p in base]
    if attack == "scaled":  # success is clipped at 1 by the protocol: claim 1.0, support ×100
        return [_with(p, success_rate=1.0, support=p.support * 100) for p in base]
    if attack == "constant":  # every attacker sends the very same patterns
        return [
            Pattern(id="c1", task="recommendation", cells=(0, 1), success_rate=1.0, support=50),
            Pattern(id="c2", task="preference", cells=(1,), success_rate=1.0, support=50),
        ]
    target = X if attack == "promote_x" else UNSEEN
    promote = [
        Pattern(
            id=f"promote-{a}",
            task="recommendation",
            cells=(int(a), target),
            success_rate=1.0,
            support=10**6,
        )
        for a in rng.choice(SOURCES, 5, replace=False)
    ]
    promote += [
        Pattern(id=f"promote-{task}", task=task, cells=(target,), success_rate=1.0, support=10**6)  # type: ignore[arg-type]
        for task in ("preference", "discovery")
    ]
    return base + promote  # camouflage: honest-looking patterns as well


def _with(p: Pattern, **changes: object) -> Pattern:
    import msgspec

    return msgspec.structs.replace(p, **changes)


def fleet(seed: int, honest: int, attackers: int, attack: str | None) -> list[LivePattern]:
    world = make_world(seed)
    rng = np.random.default_rng(seed + 1)
    live = [
        LivePattern(f"h{i}", "eu", "cb", p, NOW)
        for i in range(honest)
        for p in honest_patterns(rng, world, abandon_x=True)
    ]
    if attack is not None:
        arng = np.random.default_rng(seed + 2)
        live += [
            LivePattern(f"a{i}", "eu", "cb", p, NOW)
            for i in range(attackers)
            for p in attacker_patterns(arng, world, attack)
        ]
    return live


def release(
    seed: int, live: list[LivePattern], config: FederationConfig
) -> list[ConsolidatedPattern]:
    return consolidate(live, make_world(seed).centroids, config, now=NOW, codebook_id="cb")


def signed_weights(released: list[ConsolidatedPattern]) -> dict[str, float]:
    """What devices score with: behaviour releases count against their content."""
    return {p.id: -p.weight if p.task == "behaviour" else p.weight for p in released}


def cosine(a: dict[str, float], b: dict[str, float]) -> float:
    keys = sorted(set(a) | set(b))
    u = np.array([a.get(k, 0.0) for k in keys])
    v = np.array([b.get(k, 0.0) for k in keys])
    return float(u @ v / (math.sqrt(u @ u) * math.sqrt(v @ v)))


def promotion(released: list[ConsolidatedPattern], cell: int) -> float:
    """Total weight of positive releases whose target (last cell) is ``cell``."""
    return sum(p.weight for p in released if p.task != "behaviour" and p.cells[-1] == cell)


def penalty(released: list[ConsolidatedPattern], cell: int) -> float:
    return sum(p.weight for p in released if p.task == "behaviour" and p.cells[-1] == cell)
