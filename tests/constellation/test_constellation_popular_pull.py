"""Popular entries in a pull: on the page that completes the delta, best first, within
the byte budget (a small budget keeps the top share), never on an earlier page; the
patterns leave room for the whole list on that page."""

from __future__ import annotations

import random

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


def _page_through(patterns: list[ConsolidatedPattern], popular: list[ItemScore], budget: int):
    """Pull page after page as a device would; returns (patterns got, last popular list)."""
    since, got, last_popular = 0, [], []
    for _ in range(100):
        delta = ReleaseDelta(
            version=max(p.version for p in patterns),
            patterns=[p for p in patterns if p.version > since],
            popular=popular,
        )
        page = fit_pull(
            delta, since_version=since, max_bytes=budget, fetched_limit=4096, size_of=_size
        )
        assert _size(page) <= budget
        got += page.patterns
        last_popular = page.popular or last_popular
        since = page.version
        if not page.more:
            return got, last_popular
    raise AssertionError("paging never finished")


def test_patterns_make_room_for_the_whole_list_on_the_last_page() -> None:
    ids = random.Random(7).sample(range(200_000), 500)
    popular = [ItemScore(item_id=str(n), score=round(1 - i / 600, 2)) for i, n in enumerate(ids)]
    # Ten versions of a hundred patterns: left to themselves, the patterns would fill the
    # final page and crowd most of the list out.
    patterns = [_released(i, version=1 + i // 100) for i in range(1000)]
    got, received = _page_through(patterns, popular, budget=5120)
    assert received == popular  # not cut to what the patterns left over
    assert {p.id for p in got} == {p.id for p in patterns}  # (a cut page may resend some)


def test_without_a_list_the_patterns_use_the_whole_budget() -> None:
    patterns = [_released(i, version=1 + i // 10) for i in range(80)]
    delta = ReleaseDelta(version=8, patterns=patterns)
    page = fit_pull(delta, since_version=0, max_bytes=1 << 20, fetched_limit=4096, size_of=_size)
    assert len(page.patterns) == 80 and not page.more


def test_a_crowded_last_version_keeps_its_top_patterns_beside_the_whole_list() -> None:
    ids = random.Random(3).sample(range(200_000), 300)
    popular = [ItemScore(item_id=str(n), score=round(1 - i / 600, 2)) for i, n in enumerate(ids)]
    patterns = [_released(i, version=4) for i in range(400)]  # one version, best first
    delta = ReleaseDelta(version=4, patterns=patterns, popular=popular)
    page = fit_pull(delta, since_version=3, max_bytes=5120, fetched_limit=4096, size_of=_size)
    assert _size(page) <= 5120
    assert page.version == 4 and page.popular == popular
    assert 0 < len(page.patterns) < len(patterns)
    assert page.patterns == patterns[: len(page.patterns)]  # the highest weights
