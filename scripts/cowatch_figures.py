"""Tie-fair figures for co-watch (issue #20), until ``omega simulate`` reports tie-fair
headlines itself: replays the fleets of ``omega simulate`` (its own functions) and scores
every row by the expected NDCG@10 / HR@10 under random tie-breaking
(``omega.sim.evaluation.expected_gains``).

    PYTHONPATH=src python scripts/cowatch_figures.py --dataset DIR [--validation]
        [--mode fleets|attack] [--seed 0] [--out figures.json]
        [--cowatch central-k3|private|off] [--cowatch-per-epoch 8] [--cowatch-epoch-days 7]

``fleets``: the baselines, local-only, and Omega with ``--cowatch central-k3``; also the
promote-item target's exposure in honest top-10s of that clean fleet. ``attack``: the
same seed's coalition (33 %) forging pairs and reports; honest NDCG@10 and exposure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

from omega.sim import simulate as sim
from omega.sim._simulate_attack import exposure
from omega.sim._simulate_fleets import World, build_world, run_fleet
from omega.sim._simulate_result import cowatch_summary
from omega.sim.baselines import BASELINES
from omega.sim.datasets import load_dataset
from omega.sim.evaluation import expected_gains, holdout_ranks
from omega.sim.fleet import FleetConfig, FleetRun


def _fair(higher: np.ndarray, tied: np.ndarray) -> dict[str, float]:
    hits, gains = expected_gains(higher, tied)
    won = np.where(higher < 10, 1.0 / np.log2(higher + 2.0), 0.0)
    lost = higher + tied
    lost_g = np.where(lost < 10, 1.0 / np.log2(lost + 2.0), 0.0)
    return {
        "ndcg@10": round(float(gains.mean()), 4),
        "hr@10": round(float(hits.mean()), 4),
        "ndcg@10_pessimistic": round(float(lost_g.mean()), 4),
        "ndcg@10_optimistic": round(float(won.mean()), 4),
    }


def _fleet_fair(run: FleetRun, split: object, viewers: list[int]) -> dict[str, float]:
    higher, tied = [], []
    for v in viewers:
        viewer = run.viewers[v]
        viewer.clock.set(float(split.holdout_timestamp[v]))  # type: ignore[attr-defined]
        scores = viewer.brain.score_all().astype(np.float64)
        target = scores[split.holdout[v]]  # type: ignore[attr-defined]
        higher.append(int((scores > target).sum()))
        tied.append(int((scores == target).sum()) - 1)
    return _fair(np.array(higher), np.array(tied))


def _target(world: World) -> tuple[frozenset[int], int]:
    """The attackers and target ``omega simulate --attack`` picks for this seed."""
    split, options = world.split, world.options
    rng = np.random.default_rng(options.seed)
    n = split.n_viewers
    attackers = frozenset(
        int(v) for v in rng.choice(n, size=max(1, round(options.attackers * n)), replace=False)
    )
    counts = np.bincount(split.train_items, minlength=world.dataset.n_items)
    rare = np.flatnonzero((counts >= 1) & (counts <= 2))
    return attackers, int(rng.choice(rare if len(rare) else np.arange(world.dataset.n_items)))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--validation", action="store_true")
    parser.add_argument("--mode", default="fleets", choices=("fleets", "attack"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out")
    parser.add_argument("--cowatch", default="central-k3", choices=("central-k3", "private", "off"))
    parser.add_argument("--cowatch-per-epoch", type=int, default=8)
    parser.add_argument("--cowatch-epoch-days", type=float, default=7.0)
    parser.add_argument("--cowatch-spread", type=float, default=0.0)
    args = parser.parse_args()
    options = sim.SimulationOptions(
        seed=args.seed,
        fleet=FleetConfig(
            seed=args.seed,
            cowatch=args.cowatch,
            cowatch_per_epoch=args.cowatch_per_epoch,
            cowatch_epoch_s=args.cowatch_epoch_days * 86400,
            cowatch_spread=args.cowatch_spread,
        ),
        validation=args.validation,
        attack="promote-item" if args.mode == "attack" else None,
        cache_dir=Path.home() / ".cache" / "omega",
    )

    def progress(what: str, n: int, total: int) -> None:
        if n == total or (n - 1) % 20000 == 0:
            print(f"{what} {n}/{total}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    world = build_world(load_dataset(args.dataset), options, progress, {})
    split = world.split
    everyone = list(range(split.n_viewers))
    attackers, target = _target(world)
    honest = [v for v in everyone if v not in attackers]
    out: dict[str, object] = {"mode": args.mode, "seed": args.seed, "cowatch_source": args.cowatch}
    out["holdout"] = "validation" if args.validation else "test"
    if args.mode == "fleets":
        for name in ("popularity", "transitions", "item_knn", "als"):
            try:
                best, worst = holdout_ranks(split, BASELINES[name](split, args.seed))
                out[name] = _fair(best, worst - best)
            except Exception as exc:  # a missing optional library: say so
                out[name] = {"skipped": str(exc)}
        local, _ = await run_fleet(world, federated=False, label="local-only")
        out["local_only"] = _fleet_fair(local, split, everyone)
        local.close()
        omega, seconds = await run_fleet(world, federated=True, label="omega")
        out["omega"] = _fleet_fair(omega, split, everyone)
        out["omega_s"] = round(seconds, 1)
        if omega.audit is not None:
            audit = omega.audit.summary()
            sizes: dict[str, float] = {
                k: float(audit[k])
                for k in (
                    "push_bytes_median",
                    "push_bytes_p95",
                    "pull_bytes_median",
                    "pull_bytes_p95",
                )
            }
            sizes["pull_bytes_max_per_sync"] = float(max(omega.audit.pull_bytes, default=0))
            out["sync_bytes"] = sizes
        out["cowatch"] = cowatch_summary(omega)
        out["honest_clean"] = _fleet_fair(omega, split, honest)
        out["target_exposure_clean"] = exposure(omega, split, honest, target)
        omega.close()
    else:
        item = world.dataset.items[target]
        attacked, seconds = await run_fleet(
            world,
            federated=True,
            label="attacked",
            attackers=attackers,
            target_cell=int(world.shared.catalog.cells[target]),
            target_item=item.item_id,
        )
        out["target_title"] = item.title
        out["honest_attacked"] = _fleet_fair(attacked, split, honest)
        out["target_exposure_attacked"] = exposure(attacked, split, honest, target)
        out["cowatch"] = cowatch_summary(attacked)
        out["attacked_s"] = round(seconds, 1)
        attacked.close()
    out["wall_s"] = round(time.perf_counter() - start, 1)
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    asyncio.run(main())
