"""Popular entries in a pull: on the page that completes the delta, best first, within
the byte budget (a small budget keeps the top share), never on an earlier page."""

from __future__ import annotations

from omega.constellation.distribute import fit_pull
from omega.protocol import codec
from omega.protocol.messages import ConsolidatedPattern, ItemScore
from omega.storage.base import ReleaseDelta

POPULAR = [ItemScore(item_id=f"item-{i}", score=round(1 - i / 600, 4)) for i in range(500)]


def _size(response: object) -> int:
    return len(codec.encode(response))  # type: ignore[arg-type]


def _released(i: int, version: int) -> ConsolidatedPattern:
    return ConsolidatedPattern(
        id=f"r{i}",
        task="preference",
        cells=(i,),
        success_rate=0.8,
        support=10,
        viewers=3,
        weight=1.0 / (1 + i),
        version=version,
    )


def test_all_popular_entries_ride_when_they_fit() -> None:
    delta = ReleaseDelta(version=2, patterns=[_released(1, 2)], popular=POPULAR[:50])
    fitted = fit_pull(delta, since_version=1, max_bytes=1 << 20, fetched_limit=99, size_of=_size)
    assert fitted.popular == POPULAR[:50]
    assert fitted.version == 2


def test_a_small_budget_keeps_the_top_share() -> None:
    delta = ReleaseDelta(version=2, popular=POPULAR)
    fitted = fit_pull(delta, since_version=1, max_bytes=1500, fetched_limit=99, size_of=_size)
    assert _size(fitted) <= 1500
    assert 0 < len(fitted.popular) < len(POPULAR)
    assert fitted.popular == POPULAR[: len(fitted.popular)]


def test_popular_waits_for_the_page_that_completes_the_delta() -> None:
    patterns = [_released(i, version=1 + i // 20) for i in range(60)]
    delta = ReleaseDelta(version=3, patterns=patterns, popular=POPULAR[:10])
    first_two = fit_pull(
        ReleaseDelta(version=2, patterns=patterns[:40]),
        since_version=0,
        max_bytes=1 << 20,
        fetched_limit=4096,
        size_of=_size,
    )
    page = fit_pull(
        delta, since_version=0, max_bytes=_size(first_two), fetched_limit=4096, size_of=_size
    )
    assert page.version == 2 and page.popular == []
