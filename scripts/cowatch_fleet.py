"""Omega's federated fleet alone, for tuning how the brain combines co-watch (issue #20):
replays the fleet of ``omega simulate`` (its own functions, no baselines, no local-only
fleet: half the time), prints the tie-fair NDCG@10 of ``Brain.score_all`` and keeps the
brains in ``--work`` so ``scripts/cowatch_rescore.py`` can re-score them.

    PYTHONPATH=src python scripts/cowatch_fleet.py --dataset DIR|synthetic:TITLES,VIEWERS,DAYS
        --work DIR [--validation] [--seed 1] [--cowatch central-k3|private|off]
        [--brain '{"cowatch_window": 10}']   # BrainConfig overrides for every brain
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from pathlib import Path

import numpy as np

from omega.sim import fleet as fleet_module
from omega.sim import simulate as sim
from omega.sim._simulate_fleets import build_world, run_fleet
from omega.sim._simulate_result import cowatch_summary
from omega.sim.datasets import Dataset, load_dataset
from omega.sim.evaluation import expected_gains
from omega.sim.fleet import FleetConfig


def load(name: str) -> Dataset:
    """A MovieLens directory, or ``synthetic:T,V,D``: the demo's generator (seed 0)."""
    if name.startswith("synthetic:"):
        from omega.sim.viewers import synthetic_dataset

        titles, viewers, days = (int(x) for x in name.split(":", 1)[1].split(","))
        return synthetic_dataset(titles=titles, viewers=viewers, days=days, seed=0)
    return load_dataset(name)


def options(args: argparse.Namespace) -> sim.SimulationOptions:
    return sim.SimulationOptions(
        seed=args.seed,
        fleet=FleetConfig(seed=args.seed, cowatch=args.cowatch),
        validation=args.validation,
        work_dir=Path(args.work),
        cache_dir=Path.home() / ".cache" / "omega",
        baselines=(),
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--validation", action="store_true")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cowatch", default="central-k3", choices=("central-k3", "private", "off"))
    return p


def fair_ndcg(higher: list[int], tied: list[int]) -> float:
    _, gains = expected_gains(np.array(higher), np.array(tied))
    return round(float(gains.mean()), 4)


async def main() -> None:
    p = parser()
    p.add_argument("--brain", default="{}", help="BrainConfig overrides (JSON)")
    args = p.parse_args()
    overrides = json.loads(args.brain)
    if overrides:
        plain = fleet_module.brain_config
        fleet_module.brain_config = lambda c: dataclasses.replace(plain(c), **overrides)
    world = build_world(load(args.dataset), options(args), lambda *_: None, {})
    run, seconds = await run_fleet(world, federated=True, label="omega")
    split, higher, tied = world.split, [], []
    for v in range(split.n_viewers):
        viewer = run.viewers[v]
        viewer.clock.set(float(split.holdout_timestamp[v]))
        scores = viewer.brain.score_all().astype(np.float64)
        target = scores[split.holdout[v]]
        higher.append(int((scores > target).sum()))
        tied.append(int((scores == target).sum()) - 1)
    summary = cowatch_summary(run)
    run.close()
    out = {"omega_ndcg@10": fair_ndcg(higher, tied), "omega_s": round(seconds), "cowatch": summary}
    print(json.dumps(out | {"brain": overrides}))


if __name__ == "__main__":
    asyncio.run(main())
