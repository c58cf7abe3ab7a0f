"""Re-score the brains ``scripts/cowatch_fleet.py`` replayed (same arguments) under
variants of how co-watch combines with the other signals, without replaying: each
brain's chosen skill with another co-watch weight, and the co-watch signal divided by
the household's own best score (the rule before issue 20's combination fix), by the
table's ``full_score`` (the rule now), or by a fixed constant. Tie-fair NDCG@10 overall
and for viewers whose held-out title the table scores (``hit``), does not (``miss``), or
who hold no co-watch evidence (``none``).

    PYTHONPATH=src python scripts/cowatch_rescore.py --dataset DIR --work DIR [--validation]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
from cowatch_fleet import fair_ndcg, load, options, parser

from omega.brain import Brain, ranking
from omega.brain.skills import Skill
from omega.clock import ManualClock
from omega.sim._simulate_fleets import build_world
from omega.sim.fleet import brain_config

Rescale = Callable[[np.ndarray, ranking.Snapshot], np.ndarray]


def household(raw: np.ndarray, snap: ranking.Snapshot) -> np.ndarray:
    top = raw.max(initial=0.0)
    return raw / top if top > 0 else raw


def fixed(c: float) -> Rescale:
    return lambda raw, snap: np.minimum(raw * c, 1.0)


def variant(weight: float, rescale: Rescale | None) -> Callable[..., np.ndarray]:
    def score(snap: ranking.Snapshot, skill: Skill) -> np.ndarray:
        edges = snap.state.cowatch_edges
        if rescale is not None and edges is not None:
            n = len(snap.catalog)
            raw = np.bincount(edges.neighbours, edges.values, minlength=n)[:n]
            state = dataclasses.replace(snap.state, cowatch=rescale(raw, snap).astype(np.float32))
            snap = dataclasses.replace(snap, state=state)
        return ranking.rank(snap, Skill(skill.name, "", {**skill.weights, "cowatch": weight}))

    return score


VARIANTS = {
    **{f"table scale, weight {w}": variant(w, None) for w in (0, 4, 8, 16, 24, 64)},
    **{f"household scale, weight {w}": variant(w, household) for w in (8, 16)},
    **{f"fixed x{c}, weight 16": variant(16, fixed(c)) for c in (0.1, 0.3, 1.0)},
}


def main() -> None:
    args = parser().parse_args()
    opts = options(args)
    world = build_world(load(args.dataset), opts, lambda *_: None, {})
    split, settings = world.split, brain_config(opts.fleet)
    counts: dict[str, tuple[list[int], list[int]]] = {n: ([], []) for n in VARIANTS}
    groups: dict[str, list[int]] = {}
    for v in range(split.n_viewers):
        clock = ManualClock(float(split.holdout_timestamp[v]))
        path = Path(args.work) / "omega" / f"viewer-{v}"
        brain = Brain.open(path, clock=clock, config=settings, shared_catalog=world.shared)
        with brain._lock:
            snap = brain._snapshot(clock.now(), None)
            context = f"{snap.state.time_bucket}/{snap.state.day_type}"
            skill = brain.learner.skills.choose(context)
            target = int(split.holdout[v])
            for name, score in VARIANTS.items():
                scores = np.asarray(score(snap, skill), dtype=np.float64)
                counts[name][0].append(int((scores > scores[target]).sum()))
                counts[name][1].append(int((scores == scores[target]).sum()) - 1)
            cw = snap.state.cowatch
            held = len(cw) and cw.max() > 0
            group = "none" if not held else "hit" if cw[target] > 0 else "miss"
            groups.setdefault(group, []).append(v)
        brain.close()
    print({g: len(vs) for g, vs in sorted(groups.items())})
    for name, (higher, tied) in counts.items():
        parts = [f"all {fair_ndcg(higher, tied)}"]
        for g, vs in sorted(groups.items()):
            parts.append(f"{g} {fair_ndcg([higher[i] for i in vs], [tied[i] for i in vs])}")
        print(f"{name:32s}", ", ".join(parts))


if __name__ == "__main__":
    main()
