"""``omega simulate --attack``: the same fleet replayed with a coalition of attackers
promoting one rare title, and what that did to the honest viewers' figures and screens."""

from __future__ import annotations

from typing import Any

import numpy as np

from omega.sim._simulate_fleets import World, fleet_metrics, fleet_scorer, run_fleet
from omega.sim._simulate_result import cowatch_summary
from omega.sim.evaluation import Split
from omega.sim.fleet import FleetRun

__all__ = ["exposure", "run_attack"]


def exposure(run: FleetRun, split_: Split, viewers: list[int], target: int) -> float:
    """The share of ``viewers`` whose top 10 holds the item ``target``."""
    score = fleet_scorer(run, split_)
    hits = 0
    for v in viewers:
        scores = score(v)
        top = np.argpartition(-scores, 10)[:10]
        hits += int(target in top.tolist())
    return hits / max(1, len(viewers))


def _on_first_screen(run: FleetRun, item_id: str) -> bool | None:
    screen = run.first_screen()
    return None if screen is None else item_id in screen


async def run_attack(world: World, clean: FleetRun) -> tuple[dict[str, Any], float]:
    """Replay the fleet again with a share of attackers; compare the honest viewers."""
    dataset, split_, options = world.dataset, world.split, world.options
    rng = np.random.default_rng(options.seed)
    n = split_.n_viewers
    attackers = frozenset(
        int(v) for v in rng.choice(n, size=max(1, round(options.attackers * n)), replace=False)
    )
    honest = [v for v in range(n) if v not in attackers]
    # The target: a title few viewers ever watched, so any exposure is the attack's doing.
    counts = np.bincount(split_.train_items, minlength=dataset.n_items)
    rare = np.flatnonzero((counts >= 1) & (counts <= 2))
    target = int(rng.choice(rare if len(rare) else np.arange(dataset.n_items)))
    target_cell = int(world.shared.catalog.cells[target])
    target_item = dataset.items[target]
    attacked, seconds = await run_fleet(
        world,
        federated=True,
        label="attacked",
        attackers=attackers,
        target_cell=target_cell,
        target_item=target_item.item_id,
    )
    clean_figures = fleet_metrics(clean, split_, honest, seed=options.seed)
    attacked_figures = fleet_metrics(attacked, split_, honest, seed=options.seed)
    summary = {
        "kind": options.attack,
        "attackers": round(len(attackers) / n, 4),
        # Every figure below is over these viewers only; the clean fleet over all of them is
        # the result's "omega" (one replay serves both).
        "honest_viewers": len(honest),
        "target_item": target_item.item_id,
        "target_title": target_item.title,
        "target_cell": target_cell,
        "ndcg@10_clean": clean_figures["ndcg@10"],
        "ndcg@10_attacked": attacked_figures["ndcg@10"],
        "hr@10_clean": clean_figures["hr@10"],
        "hr@10_attacked": attacked_figures["hr@10"],
        "target_exposure_clean": exposure(clean, split_, honest, target),
        "target_exposure_attacked": exposure(attacked, split_, honest, target),
        # Not one of issue 4's targets: whether a TV with no viewing yet sees the title.
        "target_on_new_tv_clean": _on_first_screen(clean, target_item.item_id),
        "target_on_new_tv_attacked": _on_first_screen(attacked, target_item.item_id),
        "released_patterns": attacked.checkpoints[-1].get("released_patterns", 0.0)
        if attacked.checkpoints
        else 0.0,
        # With --cowatch: the coalition's forged pairs went into the stand-in's counts
        # (or, with --cowatch-attack withhold, no pair of the coalition's at all).
        "cowatch": cowatch_summary(attacked),
        "cowatch_attack": options.fleet.cowatch_attack if options.fleet.cowatch != "off" else None,
    }
    attacked.close()
    return summary, seconds
