from __future__ import annotations

from _fed_helpers import NOW, live

from omega.federation import FederationConfig, detect_trends

DAY = 86_400.0
CONFIG = FederationConfig(trend_half_life_s=DAY, trend_baseline_half_life_s=7 * DAY)


def steady(cell: int, viewers: int, region: str = "eu") -> list:
    # One new backer every 6 hours over the whole live window: a steady stream.
    return [
        live(f"s{cell}-{i}", (cell,), region=region, updated_at=NOW - i * 6 * 3600)
        for i in range(viewers)
    ]


def rising(cell: int, viewers: int, region: str = "eu") -> list:
    return [
        live(f"r{cell}-{i}", (cell,), region=region, updated_at=NOW - i * 600)
        for i in range(viewers)
    ]


def test_rising_cell_trends_and_steady_one_does_not() -> None:
    trends = detect_trends([*steady(1, 120), *rising(2, 6)], CONFIG, k=8, now=NOW)
    eu = [t for t in trends if t.region == "eu"]
    assert [t.cell for t in eu] == [2]
    assert {t.region for t in trends} == {"eu", "global"}


def test_trend_decays_with_time() -> None:
    burst = rising(3, 6)
    fresh = detect_trends(burst, CONFIG, k=8, now=NOW)
    later = detect_trends(burst, CONFIG, k=8, now=NOW + DAY)
    much_later = detect_trends(burst, CONFIG, k=8, now=NOW + 20 * DAY)
    score = {t.region: t.score for t in fresh}["eu"]
    assert 0 < {t.region: t.score for t in later}["eu"] < score
    assert much_later == []  # past the baseline, the burst is no longer rising


def test_one_viewer_counts_once_and_min_viewers_applies() -> None:
    spam = [live("v0", (4,), pid=f"p{i}", updated_at=NOW) for i in range(50)]
    assert detect_trends(spam, CONFIG, k=8, now=NOW) == []
    regions = detect_trends(rising(5, 3, "us") + rising(5, 3, "eu")[:2], CONFIG, k=8, now=NOW)
    assert {t.region for t in regions} == {"us", "global"}
