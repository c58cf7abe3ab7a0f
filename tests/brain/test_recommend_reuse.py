"""A brain asked again and again (a home screen redrawn) recommends, to the last bit, what
the same brain just opened recommends: what requests keep between them (cell knowledge's
answers, the co-watch table's reads, the index's searches) never outlives a change — an
event, a release, a co-watch page, a new session."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from omega.brain import Brain, BrainConfig, SharedCatalog
from omega.brain.ranking import FULL_SCORE_LIMIT
from omega.brain.recommend import Filters, Recommendation
from omega.brain.sync_state import CATALOG_ORDER_CURSOR
from omega.clock import ManualClock
from omega.protocol.messages import ConsolidatedPattern, ItemScore, PatternContext, Trend
from omega.sim.synthetic import clustered_vectors, synthetic_titles

TITLES = FULL_SCORE_LIMIT + 500  # above it, requests score candidates, not the catalog
FILTERS = (Filters(), Filters(genres=("Drama",), max_runtime_min=120))


def _catalog() -> SharedCatalog:
    titles = synthetic_titles(TITLES, seed=4)
    matrix = clustered_vectors(TITLES, seed=4)
    items = [t.catalog_item() for t in titles]
    return SharedCatalog(items, matrix, matrix[:: TITLES // 64])


def _release(brain: Brain, rng: np.random.Generator, version: int) -> None:
    k, ids = brain.titles.k, brain.catalog.ids
    patterns = [
        ConsolidatedPattern(
            id=f"p{version}-{i}",
            task=("recommendation", "preference", "behaviour")[i % 3],
            cells=(int(rng.integers(k)), int(rng.integers(k))) if i % 3 == 0 else (i % k,),
            context=PatternContext(time_bucket=("evening", "any")[i % 2]),
            success_rate=float(rng.uniform(0.5, 1.0)),
            support=int(rng.integers(3, 40)),
            viewers=4,
            weight=float(rng.uniform(0.1, 2.0)),
            version=version,
        )
        for i in range(30)
    ]
    brain.sync.apply_release(
        version=version,
        patterns=patterns,
        removed=[],
        trends=[Trend(cell=int(rng.integers(k)), score=0.8, version=version)],
        popular=[ItemScore(item_id=ids[int(i)], score=0.5) for i in rng.integers(0, TITLES, 20)],
    )


def _page(rng: np.random.Generator) -> list[tuple[int, list[tuple[int, int]]]]:
    sources = sorted(set(rng.integers(0, TITLES, 40).tolist()))
    pages = []
    for source in sources:
        found, counts = rng.integers(0, TITLES, 6).tolist(), rng.integers(3, 90, 6).tolist()
        pages.append((source, list(zip(found, counts, strict=True))))
    return pages


def _news(brain: Brain, clock: ManualClock, step: int) -> None:
    """What reaches the brain before step ``step``'s event: time passing, and now and
    then a release, a co-watch page or the end of a session."""
    rng = np.random.default_rng(step)
    clock.set(clock.now() + float(rng.integers(60, 3 * 3600)))
    if step % 4 == 1:
        _release(brain, rng, step)
    if step % 4 == 3:
        brain.apply_cowatch(step, _page(rng))
    if step % 11 == 10:
        brain.end_session()


def _event(brain: Brain, step: int) -> None:
    rng = np.random.default_rng(1000 + step)
    item = brain.catalog.ids[int(rng.integers(TITLES // 4))]  # a household's favourites
    if rng.random() < 0.8:
        brain.track_view(item, watch_fraction=float(rng.uniform(0.0, 1.0)))
    else:
        brain.track_skip(item, at_seconds=30.0)


def _exact(recs: list[Recommendation]) -> list[tuple[object, ...]]:
    return [
        (r.item_id, float(r.score).hex(), r.reason, {n: v.hex() for n, v in r.signals.items()})
        for r in recs
    ]


def test_a_brain_asked_at_every_step_recommends_what_it_would_just_opened(
    tmp_path: Path,
) -> None:
    catalog = _catalog()
    clock = ManualClock(1_700_000_000.0)
    config = BrainConfig()
    brain = Brain.open(tmp_path / "tv", clock=clock, config=config, shared_catalog=catalog)
    brain.sync.set_cursors({CATALOG_ORDER_CURSOR: json.dumps(catalog.catalog.ids)})
    compared = 0

    def redraw_and_compare(check: bool) -> None:
        nonlocal compared
        for _ in range(2):
            for filters in FILTERS:
                brain.recommend(10, filters=filters)
        if not check:
            return
        brain.flush()  # what a brain opened now reads
        with Brain.open(
            tmp_path / "tv", clock=clock, config=config, shared_catalog=catalog
        ) as opened:
            for filters in FILTERS:
                got = _exact(brain.recommend(10, filters=filters))
                assert got == _exact(opened.recommend(10, filters=filters))
                compared += len(got)
            assert brain.score_all().tobytes() == opened.score_all().tobytes()

    try:
        for step in range(48):
            _news(brain, clock, step)
            redraw_and_compare(step % 4 in (1, 3) and step % 8 < 4)
            _event(brain, step)
            redraw_and_compare(step % 4 == 2)
        assert compared >= 150
        assert any(r.signals["cowatch"] > 0 for r in brain.recommend(50))
        assert any(r.signals["crowd"] > 0 for r in brain.recommend(50))
    finally:
        brain.close()
