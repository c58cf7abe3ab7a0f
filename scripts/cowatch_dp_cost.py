"""What central DP on released co-watch counts would cost (issue #20): of the pairs the
k ≥ 3 release holds, how many would pass the noise threshold, per ε.

Offline and cheap: the centralised pair counts (``omega.sim.cowatch.cowatch_counts``,
distinct viewers with ``b`` within ``--window`` steps after ``a`` in the test split's
training part), the release's pairs (≥ 3 viewers, the top 20 per source title), then for
each ε the mechanism ``omega.federation.cowatch_dp`` runs — OpenDP's threshold for (ε, δ)
at L0 = ``--per-epoch`` — and the **expected** number of pairs that survive: a pair of c
viewers is kept when (c − 2) + Z reaches the threshold, Z discrete Laplace of scale
L0/ε, whose tail is exact (P(Z ≥ j) = qʲ/(1 + q), q = e^(−1/scale)); no noise is drawn.

``--scale 100,1000`` multiplies every count: a stand-in for a fleet 100× or 1000× larger
whose viewers watch alike — a scaling of counts, not a measurement (a larger fleet also
brings pairs this one never had).

    PYTHONPATH=src python scripts/cowatch_dp_cost.py DATASET [--window 10]
        [--epsilons 1,2,4,8] [--delta 1e-6] [--per-epoch 128] [--scale 1,100,1000]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import scipy.sparse as sp

from omega.errors import OmegaError
from omega.federation.cowatch_dp import CowatchPrivacy, calibrate
from omega.sim.cowatch import cowatch_counts
from omega.sim.datasets import load_dataset
from omega.sim.evaluation import split

K, TOP = 3, 20


def released_counts(counts: sp.csr_matrix) -> np.ndarray:
    """The viewers behind each pair the k ≥ 3 release holds (top ``TOP`` per source)."""
    kept: list[float] = []
    for a in range(counts.shape[0]):
        row = counts.data[counts.indptr[a] : counts.indptr[a + 1]]
        backed = np.sort(row[row >= K])[::-1][:TOP]
        kept.extend(backed.tolist())
    return np.asarray(kept, dtype=np.int64)


def expected_kept(viewers: np.ndarray, scale: float, threshold: int) -> float:
    """Σ P((c − (K − 1)) + Z ≥ threshold) over the pairs, Z discrete Laplace(scale)."""
    q = math.exp(-1.0 / scale)
    need = threshold - (viewers - (K - 1))  # Z must be ≥ need
    above = q ** np.maximum(need, 1) / (1 + q)  # P(Z ≥ need) for need ≥ 1
    below = 1 - q ** np.maximum(1 - need, 1) / (1 + q)  # 1 − P(Z ≤ need − 1), need ≤ 0
    return float(np.where(need >= 1, above, below).sum())


def _numbers(kind: type[float] | type[int], text: str, flag: str) -> list[float]:
    try:
        values = [kind(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{flag} takes comma-separated numbers") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"{flag} takes numbers above 0")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("dataset")
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument(
        "--epsilons", type=lambda t: _numbers(float, t, "--epsilons"), default="1,2,4,8"
    )
    parser.add_argument("--delta", type=float, default=1e-6)
    parser.add_argument("--per-epoch", type=int, default=128)
    parser.add_argument("--scale", type=lambda t: _numbers(int, t, "--scale"), default="1,100,1000")
    args = parser.parse_args()
    try:
        for epsilon in args.epsilons:  # each refused in one sentence, as omega serve would
            CowatchPrivacy(epsilon, args.delta, args.per_epoch)
        s = split(load_dataset(args.dataset))
    except OmegaError as exc:
        parser.error(str(exc))
    counts = cowatch_counts(s.train_indptr, s.train_items, s.n_items, window=args.window)
    viewers = released_counts(counts)
    print(
        f"{args.dataset}: {s.n_viewers} viewers, {viewers.size:,} pairs in the k ≥ {K} "
        f"release (window {args.window}, top {TOP} a title; most viewers behind one pair: "
        f"{int(viewers.max(initial=0))}); δ {args.delta:g}, L0 {args.per_epoch} pairs per TV "
        "per epoch"
    )
    epsilons, scales = args.epsilons, [int(x) for x in args.scale]
    header = " | ".join(f"counts × {x:,}" if x > 1 else f"{s.n_viewers} viewers" for x in scales)
    print(f"| ε per release | threshold (viewers) | {header} |")
    print("| ---: | ---: |" + " ---: |" * len(scales))
    for epsilon in epsilons:
        c = calibrate(epsilon, args.delta, args.per_epoch)
        cells = []
        for x in scales:
            kept = expected_kept(viewers * x, c.scale, c.threshold)
            cells.append(f"{kept:,.0f} ({kept / max(viewers.size, 1):.1%})")
        print(f"| {epsilon:g} | {c.threshold + K - 1:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
