"""``omega simulate --attack``: the same fleet replayed with a coalition of attackers
promoting one rare title, and what that did to the honest viewers' figures and screens.

In two halves, so that the attacked fleet can replay in the second process beside the
clean one (``omega.sim._beside``): :func:`replay_attacked` replays it and measures it
(:class:`Attacked`, picklable), :func:`attack_summary` sets that beside the clean fleet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from omega.sim._simulate_fleets import World, fleet_metrics, fleet_scorer, run_fleet
from omega.sim._simulate_result import cowatch_summary
from omega.sim.evaluation import Split
from omega.sim.fleet import FleetRun

__all__ = ["Attacked", "attack_summary", "exposure", "replay_attacked"]


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


@dataclass(frozen=True, slots=True)
class Coalition:
    """Who attacks and what it promotes: drawn from the seed alone, so both halves (and
    both processes) draw the same."""

    attackers: frozenset[int]
    honest: list[int]
    #: The promoted title's row in the dataset, its cell and its id.
    target: int
    target_cell: int


def coalition(world: World) -> Coalition:
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
    return Coalition(attackers, honest, target, int(world.shared.catalog.cells[target]))


@dataclass(frozen=True, slots=True)
class Attacked:
    """The attacked fleet, measured over the honest viewers."""

    figures: dict[str, float]
    exposure: float
    on_new_tv: bool | None
    released_patterns: float
    cowatch: dict[str, Any] | None
    seconds: float


async def replay_attacked(world: World) -> Attacked:
    """Replay the fleet with the coalition and measure it."""
    who = coalition(world)
    target_item = world.dataset.items[who.target]
    attacked, seconds = await run_fleet(
        world,
        federated=True,
        label="attacked",
        attackers=who.attackers,
        target_cell=who.target_cell,
        target_item=target_item.item_id,
    )
    try:
        return Attacked(
            figures=fleet_metrics(attacked, world.split, who.honest, seed=world.options.seed),
            exposure=exposure(attacked, world.split, who.honest, who.target),
            on_new_tv=_on_first_screen(attacked, target_item.item_id),
            released_patterns=attacked.checkpoints[-1].get("released_patterns", 0.0)
            if attacked.checkpoints
            else 0.0,
            # With --cowatch: the coalition's forged pairs went into the counts (or, with
            # --cowatch-attack withhold, no pair of the coalition's at all).
            cowatch=cowatch_summary(attacked),
            seconds=seconds,
        )
    finally:
        attacked.close()


def attack_summary(world: World, clean: FleetRun, attacked: Attacked) -> dict[str, Any]:
    """The report's attack section: the honest viewers, clean against attacked."""
    split_, options = world.split, world.options
    who = coalition(world)
    target_item = world.dataset.items[who.target]
    clean_figures = fleet_metrics(clean, split_, who.honest, seed=options.seed)
    return {
        "kind": options.attack,
        "attackers": round(len(who.attackers) / split_.n_viewers, 4),
        # Every figure below is over these viewers only; the clean fleet over all of them is
        # the result's "omega" (one replay serves both).
        "honest_viewers": len(who.honest),
        "target_item": target_item.item_id,
        "target_title": target_item.title,
        "target_cell": who.target_cell,
        "ndcg@10_clean": clean_figures["ndcg@10"],
        "ndcg@10_attacked": attacked.figures["ndcg@10"],
        "hr@10_clean": clean_figures["hr@10"],
        "hr@10_attacked": attacked.figures["hr@10"],
        "target_exposure_clean": exposure(clean, split_, who.honest, who.target),
        "target_exposure_attacked": attacked.exposure,
        # Not one of issue 4's targets: whether a TV with no viewing yet sees the title.
        "target_on_new_tv_clean": _on_first_screen(clean, target_item.item_id),
        "target_on_new_tv_attacked": attacked.on_new_tv,
        "released_patterns": attacked.released_patterns,
        "cowatch": attacked.cowatch,
        "cowatch_attack": options.fleet.cowatch_attack if options.fleet.cowatch != "off" else None,
    }
