"""Offline model of the promote-item coalition forging co-watch pairs (issue #20).

Builds the k ≥ 3 table from the honest viewers' train sequences of the validation split
(engaged titles, window 3, as ``Brain.pairs_to_contribute`` does), adds the coalition's
forged pairs (a third of the viewers, ``omega simulate --attack``'s draw for the seed),
and scores each honest viewer by co-watch (weight 16, decay 0.7, backward 0.25) plus the
content kernel over its last titles (weight 8, the brain's main own signal). Prints the
honest tie-fair NDCG@10 and the target's expected share of honest top-10s, clean and
under attacks of several spreads, for the defences given; "clean, every TV honest" is the
fleet with the coalition's TVs contributing their own pairs, "coalition withholds" the
same fleet with the coalition sending nothing.

    PYTHONPATH=src python scripts/cowatch_attack_model.py --dataset DIR
        [--pool N] [--inflow-cap] [--row-cap] [--spread R]
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from omega.brain.catalog import item_text
from omega.sim.content import catalog_items, embed_texts
from omega.sim.datasets import load_dataset
from omega.sim.evaluation import (
    ViewerScorer,
    expected_gains,
    holdout_ranks,
    split,
    validation_dataset,
)

W, MIN_STARS, K, BUDGET = 3, 2.0, 3, 64


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--pool", type=int, default=0, help="cowatch_pool (0: no gate)")
    parser.add_argument("--inflow-cap", action="store_true")
    parser.add_argument("--row-cap", action="store_true")
    parser.add_argument("--spread", type=float, default=0.0, help="cowatch_spread (0: off)")
    args = parser.parse_args()
    data = split(validation_dataset(load_dataset(args.dataset)))
    n = data.n_items
    vectors = embed_texts(
        [item_text(i) for i in catalog_items(data.dataset)],
        cache_dir=Path.home() / ".cache" / "omega",
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rng = np.random.default_rng(0)
    viewers = data.n_viewers
    attackers = {int(v) for v in rng.choice(viewers, size=round(0.33 * viewers), replace=False)}
    counts = np.bincount(data.train_items, minlength=n)
    rare = np.flatnonzero((counts >= 1) & (counts <= 2))
    target = int(rng.choice(rare))
    honest = np.array([v for v in range(viewers) if v not in attackers])

    def sequence(v: int) -> np.ndarray:
        items, ratings, _ = data.train_history(v)
        items = items[ratings >= MIN_STARS]
        _, first = np.unique(items, return_index=True)
        return items[np.sort(first)]

    def contributed(tvs: list[int]) -> tuple[Counter[tuple[int, int]], dict[int, set[int]]]:
        found: Counter[tuple[int, int]] = Counter()
        reached: dict[int, set[int]] = defaultdict(set)
        for v in tvs:
            s = sequence(v)
            for gap in range(1, W + 1):
                for a, b in zip(s[:-gap].tolist(), s[gap:].tolist(), strict=True):
                    found[(a, b)] += 1
                    reached[b].add(v)
        return found, reached

    pairs, into = contributed(honest.tolist())
    popular = [int(i) for i in np.argsort(-counts, kind="stable") if i != target]

    def table(found: Counter[tuple[int, int]], dest: dict[int, set[int]]) -> sp.csr_matrix:
        keep = {p: float(c) for p, c in found.items() if c >= K}
        if args.inflow_cap:
            inflow: Counter[int] = Counter()
            for (_, b), c in keep.items():
                inflow[b] += int(c)
            keep = {
                (a, b): c * min(1.0, W * len(dest[b]) / inflow[b]) for (a, b), c in keep.items()
            }
        if args.row_cap:
            rows: dict[int, list[float]] = defaultdict(list)
            for (a, _), c in keep.items():
                rows[a].append(c)
            second = {a: sorted(cs)[-2] if len(cs) > 1 else cs[0] for a, cs in rows.items()}
            keep = {(a, b): min(c, second[a]) for (a, b), c in keep.items()}
        if args.spread:  # the brain's rule (omega.brain._cowatch_spread), on released counts
            best: Counter[int] = Counter()
            for (a, _), c in keep.items():
                best[a] = max(best[a], int(c))
            keep = {(a, b): c for (a, b), c in keep.items() if c <= args.spread * best[b]}
        src = np.array([p[0] for p in keep])
        dst = np.array([p[1] for p in keep])
        c = sp.csr_matrix((np.array(list(keep.values())), (src, dst)), shape=(n, n))
        m = (c + 0.25 * c.T).tocsr()
        degree = np.asarray(m.sum(axis=1)).ravel()
        degree[degree == 0] = 1.0
        return (sp.diags(1.0 / degree) @ m).tocsr()

    def measure(label: str, found: Counter[tuple[int, int]], dest: dict[int, set[int]]) -> None:
        m = table(found, dest)

        def one(v: int) -> np.ndarray:
            items, ratings, _ = data.train_history(v)
            history: list[int] = []
            for item in items[ratings >= MIN_STARS][::-1].tolist():
                if item not in history:
                    history.append(item)
                if len(history) == 10:
                    break
            if not history:
                return np.zeros(n)
            weights = 0.7 ** np.arange(len(history))
            cowatch = np.asarray(m[history].T @ weights).ravel()
            own = (np.maximum(vectors @ vectors[history].T, 0) ** 4) @ (
                0.8 ** np.arange(len(history))
            )
            own[items] = -1.0  # titles seen never count toward the pool
            if args.pool:
                threshold = np.partition(own, n - args.pool)[n - args.pool]
                cowatch = np.where(own >= threshold, cowatch, 0.0)
            top = cowatch.max()
            return (cowatch / top if top > 0 else cowatch) * 16 + own / weights.sum() * 8

        scorer = ViewerScorer(one)
        scores = scorer.score(honest)
        seen = data.train_matrix[honest]
        scores[np.repeat(np.arange(len(honest)), np.diff(seen.indptr)), seen.indices] = -np.inf
        at = scores[:, [target]]
        exposure, _ = expected_gains((scores > at).sum(1), (scores == at).sum(1) - 1)
        best, worst = holdout_ranks(data, scorer)
        _, gains = expected_gains(best[honest], (worst - best)[honest])
        print(
            f"{label:28s} honest NDCG@10 {gains.mean():.4f}  target in top-10 {exposure.mean():.4f}"
        )

    measure("clean, every TV honest", *contributed(list(range(viewers))))
    measure("coalition withholds", pairs, into)
    for spread in ("budget", 3, 20, "similar-20"):
        forged: Counter[tuple[int, int]] = Counter()
        if spread == "similar-20":  # the 20 watched titles closest to the target's content
            near = np.argsort(-(vectors[popular[:2000]] @ vectors[target]))[:20]
            sources = [popular[i] for i in near]
        for v in attackers:
            if spread == "budget":  # 64 pairs per sync, a sync per 10 events
                sources = popular[: BUDGET * max(1, len(data.train_sequence(v)) // 10)]
            elif isinstance(spread, int):
                sources = popular[:spread]
            forged.update((a, target) for a in sources)
        dest = defaultdict(set, {b: set(s) for b, s in into.items()})
        dest[target] |= attackers
        measure(f"attack, spread {spread}", pairs + forged, dest)


if __name__ == "__main__":
    main()
