from __future__ import annotations

import numpy as np

from omega.brain import Brain, Filters
from omega.brain.recommend import ERA_YEARS, era_gap, recent_kernel
from omega.clock import ManualClock


def test_cold_start_recommends_with_reasons(brain: Brain) -> None:
    recs = brain.recommend(10)
    assert len(recs) == 10
    assert len({r.item_id for r in recs}) == 10
    assert all(r.reason for r in recs)


def test_excludes_watched_and_skipped(brain: Brain, clock: ManualClock) -> None:
    brain.track_view("ani0", watch_fraction=1.0)
    brain.track_skip("cri0", at_seconds=5)
    ids = {r.item_id for r in brain.recommend(30)}
    assert "ani0" not in ids and "cri0" not in ids


def test_honours_filters(brain: Brain) -> None:
    recs = brain.recommend(10, filters=Filters(genres=("Documentary",)))
    assert recs and all(r.item_id.startswith("doc") for r in recs)
    short = brain.recommend(10, filters=Filters(max_runtime_min=100))
    assert short
    for r in short:
        row = brain.catalog.rows[brain.catalog.row_of_key[brain.titles.key(r.item_id)]]
        assert row.runtime_min is not None and row.runtime_min <= 100
    excluded = brain.recommend(36, filters=Filters(exclude=frozenset({"ani1", "doc1"})))
    assert not {"ani1", "doc1"} & {r.item_id for r in excluded}


def test_improves_within_ten_interactions(brain: Brain, clock: ManualClock) -> None:
    """A crime fan: after ten interactions most of the top five are crime."""

    def crime_share() -> float:
        return sum(r.item_id.startswith("cri") for r in brain.recommend(5)) / 5

    cold = crime_share()
    plan = [
        ("cri0", 1.0),
        ("ani0", 0.05),
        ("cri1", 1.0),
        ("doc0", 0.05),
        ("cri2", 0.9),
        ("cri3", 1.0),
        ("ani1", 0.02),
        ("cri4", 0.95),
        ("cri5", 1.0),
        ("doc1", 0.03),
    ]
    for item, fraction in plan:
        clock.advance(1200)
        brain.track_view(item, watch_fraction=fraction)
    warm = crime_share()
    assert warm >= 0.8 and warm > cold
    reasons = " ".join(r.reason for r in brain.recommend(5))
    assert "because you watched" in reasons or "taste" in reasons


def test_bad_k_is_rejected(brain: Brain) -> None:
    import pytest

    from omega.errors import InputError

    with pytest.raises(InputError):
        brain.recommend(0)


def test_the_popularity_gate_only_boosts_the_households_own_top_share() -> None:
    from omega.brain.recommend import combine
    from omega.brain.skills import SKILLS

    own = np.linspace(1.0, 0.0, 100, dtype=np.float32)  # row 0 is the household's best
    popular = np.zeros(100, dtype=np.float32)
    popular[[1, 90]] = 1.0  # a title it likes and one far from its taste
    signals = {"recent": own / 8, "popular": popular}
    penalty = np.zeros(100, dtype=np.float32)
    skill = SKILLS["continue"]
    ungated = combine(signals, penalty, skill)
    gated = combine(signals, penalty, skill, gate=0.05)
    assert gated[1] == ungated[1] and gated[1] > gated[0]  # re-ordered within its top 5 %
    assert gated[90] == own[90] < ungated[90]  # not lifted from outside it
    assert combine(signals, penalty, skill, gate=0.0)[90] == ungated[90]


def test_recent_kernel_is_the_weighted_sum_of_fourth_powers_of_positive_cosines(
    brain: Brain,
) -> None:
    """Σ w·max(0, cos)^4 over the recent titles, checked in float64 on the real vectors."""
    catalog = brain.catalog
    rows = np.arange(len(catalog.ids), dtype=np.int64)
    recent = [(3, 0.8), (7, 0.5), (11, 0.25)]
    got = recent_kernel(catalog, rows, recent)
    cos = catalog.matrix.astype(np.float64) @ catalog.matrix[[3, 7, 11]].astype(np.float64).T
    want = (np.maximum(cos, 0.0) ** 4) @ np.array([0.8, 0.5, 0.25])
    assert got.dtype == np.float32 and np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert got[3] > got[rows != 3].mean()  # a recent title is closest to itself
    assert not recent_kernel(catalog, rows, []).any()


def test_era_gap_is_minus_the_years_to_the_nearest_recent_title(brain: Brain) -> None:
    """The sorted-search era gap agrees bit for bit with the brute-force minimum over every
    recent title, unknown years included (0 for a row of unknown year)."""
    catalog = brain.catalog
    rng = np.random.default_rng(7)
    n = len(catalog.ids)
    catalog.years = rng.integers(1920, 2025, n).astype(np.float32)
    catalog.years[rng.random(n) < 0.2] = np.nan
    rows = np.arange(n, dtype=np.int64)
    for _ in range(50):
        recent = [(int(r), 1.0) for r in rng.integers(0, n, int(rng.integers(1, 10)))]
        years = catalog.years[[r for r, _ in recent]]
        years = years[np.isfinite(years)]
        got = era_gap(catalog, rows, recent)
        if len(years) == 0:
            assert not got.any()
            continue
        gaps = np.abs(catalog.years[:, None] - years[None, :]).min(axis=1)
        want = np.where(np.isfinite(gaps), -gaps / np.float32(ERA_YEARS), 0.0).astype(np.float32)
        np.testing.assert_array_equal(got, want)
