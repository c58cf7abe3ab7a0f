"""A fleet whose release exercises every rule a partitioned round must keep exact."""

from __future__ import annotations

import numpy as np

from omega.federation import FederationConfig, RoundInputs
from omega.federation.synthetic import make_world
from omega.protocol.messages import Pattern, PatternContext
from omega.storage.base import Codebook, LivePattern

NOW = 1_750_000_000.0
CONFIG = FederationConfig(min_viewers=3)


def engine_world(viewers: int = 240, seed: int = 3) -> tuple[Codebook, list[LivePattern]]:
    """Synthetic viewers over 64 cells whose centroids come in near-duplicate pairs (so
    content groups hold two cells), plus a coalition that claims to abandon popular cells
    (so some clusters are disputed), with updates spread over two weeks (so cells trend)."""
    world = make_world(viewers=viewers, patterns_per_viewer=12, k=64, dim=16, seed=seed)
    codebook = world.codebook
    live = [
        LivePattern(v.viewer_id, v.region, "cb", p, NOW) for v in world.viewers for p in v.patterns
    ]
    centroids = np.frombuffer(codebook.centroids_f16, dtype="<f2").reshape(64, -1).copy()
    centroids[1::2] = centroids[0::2]  # cells 2i and 2i+1: one content group
    paired = Codebook("cb", codebook.dim, centroids.tobytes(), codebook.k)
    rng = np.random.default_rng(seed)
    spread = [
        LivePattern(p.viewer_id, p.region, p.codebook_id, p.pattern, NOW - rng.uniform(0, 14e5))
        for p in live
    ]
    popular = sorted({p.pattern.cells[-1] for p in live})[:6]
    coalition = [
        LivePattern(
            f"coalition-{i}",
            "eu",
            "cb",
            Pattern(
                id=f"quit-{cell}",
                task="behaviour",
                cells=(cell,),
                context=PatternContext(time_bucket="night"),
                success_rate=0.1,
                support=30,
            ),
            NOW,
        )
        for i in range(40)
        for cell in popular
    ]
    return paired, spread + coalition


def round_inputs(codebook: Codebook, live: list[LivePattern]) -> RoundInputs:
    return RoundInputs(
        codebook=codebook,
        live=live,
        base_version=0,
        current=[],
        current_trends=[],
        popularity=[],
        current_popular=[],
    )
