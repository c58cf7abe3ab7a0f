"""Issue 3's Byzantine test: a third of the fleet attacks; fixed seed.

Measured with this seed (trimmed mean), cosine to the honest-only release:
sign_flip 1.000, scaled 0.947, constant 0.968, promote_x 0.930. For scale: adding 100
*honest* viewers instead moves the release to 0.951 — what the attackers' camouflage
(honest-looking patterns) does is mostly what more honest viewers would do.

Criteria, asserted for each attack and for trimmed mean and median:
- closeness: cosine ≥ 0.92 between the signed weight vectors over released clusters
  (behaviour releases count negative; a cluster missing from one release counts 0);
- X gains nothing: the total weight of positive releases targeting X under attack is ≤
  its honest level (0 — honest viewers mostly abandon X), and every positive cluster the
  attack adds targets content some honest viewers succeed with (the camouflage lifted a
  true but rare pattern over the 3-viewer line), except the
  "constant" attack's own fixed pattern, on content nobody else has an opinion about.

Known limits (see the report): promote_x makes X *disputed*, so its honest abandonment
release is withdrawn too (X goes from penalised to neutral, never to promoted); and a
coalition promoting content that no honest viewer has an opinion on is released, bounded
only by the weight saturation.
"""

from __future__ import annotations

import pytest
from _byzantine_world import (
    ATTACKS,
    X,
    cosine,
    fleet,
    promotion,
    release,
    signed_weights,
)

from omega.federation import FederationConfig

SEED = 20_260_322
HONEST, ATTACKERS = 200, 100  # attackers are 33.3% of the fleet


@pytest.fixture(scope="module")
def honest_release():
    return {
        rule: release(SEED, fleet(SEED, HONEST, 0, None), FederationConfig(fusion=rule))
        for rule in ("trimmed_mean", "median")
    }


@pytest.mark.parametrize("rule", ["trimmed_mean", "median"])
@pytest.mark.parametrize("attack", [a for a in ATTACKS if a != "promote_unseen"])
def test_release_stays_close_and_x_is_not_promoted(honest_release, attack: str, rule: str) -> None:
    config = FederationConfig(fusion=rule)
    honest = honest_release[rule]
    attacked = release(SEED, fleet(SEED, HONEST, ATTACKERS, attack), config)
    similarity = cosine(signed_weights(honest), signed_weights(attacked))
    assert similarity >= 0.92, f"{attack}/{rule}: cosine {similarity:.4f}"
    assert promotion(honest, X) == 0.0
    assert promotion(attacked, X) <= promotion(honest, X)
    honest_ids = {p.id for p in honest}
    liked = {
        lp.pattern.cells[-1]
        for lp in fleet(SEED, HONEST, 0, None)
        if lp.pattern.task != "behaviour"
    }
    for p in attacked:
        if p.task != "behaviour" and p.id not in honest_ids:
            assert attack == "constant" or p.cells[-1] in liked, p


def test_fused_success_moves_little_and_less_than_a_plain_mean() -> None:
    drifts = {}
    for rule in ("trimmed_mean", "weighted_mean"):
        config = FederationConfig(fusion=rule)
        honest = {p.id: p for p in release(SEED, fleet(SEED, HONEST, 0, None), config)}
        for attack in ("sign_flip", "scaled", "promote_x"):
            attacked = release(SEED, fleet(SEED, HONEST, ATTACKERS, attack), config)
            shared = [p for p in attacked if p.id in honest]
            drift = [abs(p.success_rate - honest[p.id].success_rate) for p in shared]
            big = [d for p, d in zip(shared, drift, strict=True) if honest[p.id].viewers >= 20]
            drifts[rule, attack] = sum(drift) / len(drift)
            if rule == "trimmed_mean":
                assert drifts[rule, attack] <= 0.08, (attack, drifts[rule, attack])
                assert max(big) <= 0.1, (attack, max(big))
    assert drifts["trimmed_mean", "sign_flip"] == 0.0  # flipped patterns fail the filter
    assert drifts["trimmed_mean", "scaled"] < drifts["weighted_mean", "scaled"]
