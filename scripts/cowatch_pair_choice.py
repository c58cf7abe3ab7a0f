"""Which pairs should a TV whose budget cannot pay for all of them contribute? (issue #20)

An offline model of the private release, to compare choice rules quickly: every viewer of
the validation split derives its ordered pairs as the brain does (engaged titles: ≥ 2★;
b within 3 titles after a; each pair once), contributes at most ``budget`` of them chosen
by ``rule``, and a pair is released when ≥ 3 viewers sent it (top 20 per source, counts
quantised to two leading bits). The brain's scoring rule (forward + 0.25 backward, rows
divided by √degree, last 10 engaged titles decayed by 0.7) ranks every title with the
released table alone; tie-fair NDCG@10 / HR@10 on the validation split. Popularity is
the 500 titles most viewers engaged with (what the release's popularity list holds).

Rules: ``recent`` (the closest first, then the most recent: the brain before #20's
second session), ``recent200`` (the same over the newest 200 titles only), ``pop_min``
(by the popularity of the pair's rarer title, then closest), ``gap_pop`` (the closest
first, then the rarer title's popularity, then the most recent: ``likely_first``).

    PYTHONPATH=src python scripts/cowatch_pair_choice.py DATASET [--share 0.5]
        [--budgets inf,640,128] [--rules recent,pop_min,gap_pop]
    DATASET: a MovieLens directory, or synthetic:TITLES,VIEWERS,DAYS (the demo's generator)
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from omega.sim.datasets import Dataset, load_dataset
from omega.sim.evaluation import Split, evaluate, split, validation_dataset, viewer_subsample
from omega.sim.viewers import synthetic_dataset

WINDOW, K, TOP, BACKWARD, DEGREE, RECENT, DECAY = 3, 3, 20, 0.25, 0.5, 10, 0.7
Candidate = tuple[int, int, int, int]  # (gap, -(position of b), a, b)


def quantise(count: int) -> int:
    """Two leading bits, as the release quantises counts."""
    if count < 4:
        return count
    bits = count.bit_length()
    return (count >> (bits - 2)) << (bits - 2)


def engaged(s: Split, u: int) -> list[int]:
    lo, hi = s.train_indptr[u], s.train_indptr[u + 1]
    seq: list[int] = []
    seen: set[int] = set()
    items, stars = s.train_items[lo:hi].tolist(), s.train_ratings[lo:hi].tolist()
    for item, rating in zip(items, stars, strict=True):
        if rating >= 2.0 and item not in seen:
            seq.append(item)
            seen.add(item)
    return seq


def candidates(seq: list[int], lookback: int | None = None) -> list[Candidate]:
    s = seq if lookback is None else seq[-lookback:]
    return [
        (gap, -(i + gap), a, s[i + gap])
        for i, a in enumerate(s)
        for gap in range(1, WINDOW + 1)
        if i + gap < len(s)
    ]


def rules(pop: np.ndarray) -> dict[str, Callable[[Candidate], tuple[float, ...]]]:
    rare = lambda c: -min(pop[c[2]], pop[c[3]])  # noqa: E731
    return {
        "recent": lambda c: (c[0], c[1]),
        "recent200": lambda c: (c[0], c[1]),
        "pop_min": lambda c: (rare(c), c[0], c[1]),
        "gap_pop": lambda c: (c[0], rare(c), c[1]),
    }


def released(s: Split, chosen: list[list[tuple[int, int]]]) -> tuple[sp.csr_matrix, int]:
    counts: dict[int, Counter[int]] = {}
    for pairs in chosen:
        for a, b in pairs:
            counts.setdefault(a, Counter())[b] += 1
    src, dst, val = [], [], []
    for a, found in counts.items():
        kept = sorted(((b, c) for b, c in found.items() if c >= K), key=lambda x: (-x[1], x[0]))
        for b, c in kept[:TOP]:
            src.append(a)
            dst.append(b)
            val.append(quantise(c))
    n = s.n_items
    table = sp.csr_matrix((val, (src, dst)), shape=(n, n), dtype=np.float64)
    both = (table + BACKWARD * table.T).tocsr()
    degree = np.asarray(both.sum(axis=1)).ravel()
    degree[degree == 0] = 1
    return sp.csr_matrix(sp.diags(degree**-DEGREE) @ both), len(val)


class TableScorer:
    def __init__(self, s: Split, matrix: sp.csr_matrix) -> None:
        self.s, self.matrix = s, matrix

    def score(self, viewers: np.ndarray) -> np.ndarray:
        rows, cols, vals = [], [], []
        for r, u in enumerate(viewers.tolist()):
            for p, a in enumerate(engaged(self.s, u)[::-1][:RECENT]):
                rows.append(r)
                cols.append(a)
                vals.append(DECAY**p)
        weights = sp.csr_matrix((vals, (rows, cols)), shape=(len(viewers), self.s.n_items))
        return np.asarray((weights @ self.matrix).todense(), dtype=np.float64)


def dataset(spec: str, share: float) -> Dataset:
    if spec.startswith("synthetic:"):
        titles, viewers, days = (int(x) for x in spec.split(":", 1)[1].split(","))
        data = synthetic_dataset(titles=titles, viewers=viewers, days=days, seed=0)
    else:
        data = load_dataset(spec)
    return viewer_subsample(data, share, seed=0) if share < 1 else data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--share", type=float, default=1.0)
    parser.add_argument("--budgets", default="inf,640,128")
    parser.add_argument("--rules", default="recent200,recent,pop_min,gap_pop")
    args = parser.parse_args()
    s = split(validation_dataset(dataset(args.dataset, args.share)))
    seqs = [engaged(s, u) for u in range(s.n_viewers)]
    viewers_of = np.zeros(s.n_items)
    for seq in seqs:
        viewers_of[seq] += 1
    top = np.argsort(-viewers_of)[:500]
    pop = np.zeros(s.n_items)
    pop[top] = viewers_of[top] / viewers_of.max()
    keys = rules(pop)
    print(f"{args.dataset} share {args.share}: {s.n_viewers} viewers, {s.n_items} titles")
    print("| budget | rule | pairs sent | pairs released | NDCG@10 | HR@10 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for text in args.budgets.split(","):
        budget = None if text == "inf" else int(text)
        for rule in args.rules.split(",") if budget is not None else ["recent"]:
            lookback = 200 if rule == "recent200" else None
            chosen = [
                [(a, b) for *_, a, b in sorted(candidates(q, lookback), key=keys[rule])][:budget]
                for q in seqs
            ]
            matrix, npairs = released(s, chosen)
            f = evaluate(s, TableScorer(s, matrix), coverage=False)
            sent = sum(map(len, chosen))
            print(
                f"| {text} | {rule} | {sent:,} | {npairs:,} | {f['ndcg@10']:.4f} | "
                f"{f['hr@10']:.4f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
