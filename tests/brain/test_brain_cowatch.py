"""Co-watch knowledge on the TV: the pairs it contributes, the released table it applies,
and how that table reaches scoring, candidates and reasons (``omega.brain.cowatch``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from omega.brain import Brain
from omega.brain.cowatch import ordered_pairs
from omega.brain.sync_state import CATALOG_ORDER_CURSOR
from omega.clock import ManualClock
from omega.errors import ConfigError, InputError


def _order(brain: Brain) -> list[str]:
    """A server order unlike the brain's own rows (reversed), so a mix-up shows."""
    order = list(reversed(brain.catalog.ids))
    brain.sync.set_cursors({CATALOG_ORDER_CURSOR: json.dumps(order)})
    return order


def _watch(brain: Brain, clock: ManualClock, item_ids: list[str], fraction: float = 0.9) -> None:
    for item_id in item_ids:
        clock.set(clock.now() + 600)
        brain.track_view(item_id, watch_fraction=fraction)


def _row(brain: Brain, item_id: str) -> int:
    return brain.catalog.row_of_key[brain.catalog.key_of_id[item_id]]


def test_ordered_pairs_are_closest_first_then_newest() -> None:
    assert ordered_pairs([1, 2, 3, 4], 2) == [(3, 4), (2, 3), (1, 2), (2, 4), (1, 3)]


def test_pairs_name_positions_once_and_skip_abandoned_titles(
    brain: Brain, clock: ManualClock
) -> None:
    order = _order(brain)
    pos = {item: i for i, item in enumerate(order)}
    _watch(brain, clock, ["cri0", "cri3"])
    _watch(brain, clock, ["ani0"], fraction=0.1)  # abandoned early: not engaged
    brain.track_skip("doc0")
    _watch(brain, clock, ["cri2"])
    first = brain.pairs_to_contribute(1)
    assert first == [
        (pos["cri3"], pos["cri2"]),
        (pos["cri0"], pos["cri3"]),
        (pos["cri0"], pos["cri2"]),
    ]
    assert brain.pairs_to_contribute(1) == first  # a retried epoch sends the same pairs
    assert brain.pairs_to_contribute(2) == []  # never the same pair twice
    _watch(brain, clock, ["cri4"])
    assert brain.pairs_to_contribute(3) == [
        (pos["cri2"], pos["cri4"]),
        (pos["cri3"], pos["cri4"]),
        (pos["cri0"], pos["cri4"]),
    ]


def test_pairs_per_epoch_are_bounded(tmp_path: Path, clock: ManualClock, brain: Brain) -> None:
    _order(brain)
    _watch(brain, clock, ["cri0", "cri1", "cri2", "cri3", "cri4", "cri5"])
    brain.close()
    from omega.brain import BrainConfig

    bounded = BrainConfig(codebook_cells=6, cowatch_pairs_per_epoch=4)
    reopened = Brain.open(tmp_path / "tv", clock=clock, config=bounded)
    try:
        assert len(reopened.pairs_to_contribute(1)) == 4
        assert len(reopened.pairs_to_contribute(2)) == 4
        rest = reopened.pairs_to_contribute(3)  # 5 + 4 + 3 pairs within 3 titles: 12
        assert len(rest) == 4
        assert reopened.pairs_to_contribute(4) == []
    finally:
        reopened.close()


def test_no_pairs_and_no_table_without_a_catalog_order(brain: Brain, clock: ManualClock) -> None:
    _watch(brain, clock, ["cri0", "cri1"])
    assert brain.pairs_to_contribute(1) == []
    with pytest.raises(ConfigError, match="catalog order"):
        brain.apply_cowatch(1, [(0, [(1, 5)])])


def test_released_neighbours_lead_scoring_with_a_reason_naming_the_title(
    brain: Brain, clock: ManualClock
) -> None:
    order = _order(brain)
    pos = {item: i for i, item in enumerate(order)}
    _watch(brain, clock, ["cri0"])  # Heat
    before = brain.score_all()
    # Viewers who watched Heat went on to a documentary, against the household's genre.
    brain.apply_cowatch(1, [(pos["cri0"], [(pos["doc3"], 40), (pos["cri1"], 2)])])
    scores = brain.score_all()
    assert scores[_row(brain, "doc3")] > before[_row(brain, "doc3")]
    assert int(np.argmax(scores)) == _row(brain, "doc3")
    top = brain.recommend(3)[0]
    assert top.item_id == "doc3" and 0.0 < top.signals["cowatch"] <= 1.0
    assert top.reason == "viewers who watched Heat went on to watch this"


def test_pages_replace_their_sources_and_keep_the_rest(
    brain: Brain, clock: ManualClock, tmp_path: Path
) -> None:
    order = _order(brain)
    pos = {item: i for i, item in enumerate(order)}
    _watch(brain, clock, ["cri0", "ani0"])
    brain.apply_cowatch(1, [(pos["cri0"], [(pos["doc3"], 40)]), (pos["ani0"], [(pos["doc5"], 9)])])
    brain.apply_cowatch(2, [(pos["cri0"], [(pos["doc1"], 40)])])  # a delta page
    scores = brain.score_all()
    assert scores[_row(brain, "doc1")] > scores[_row(brain, "doc3")]
    assert scores[_row(brain, "doc5")] > scores[_row(brain, "doc3")]  # ani0's row stayed
    brain.apply_cowatch(3, [(pos["ani0"], [])])  # an empty list removes the source
    brain.close()
    reopened = Brain.open(tmp_path / "tv", clock=clock)
    try:
        assert reopened.cowatch.version() == 3
        table = reopened.cowatch.matrix(reopened.catalog)
        assert table is not None
        assert table.matrix[_row(reopened, "ani0")].nnz == 0
        assert table.matrix[_row(reopened, "doc1")].nnz == 1  # the backward edge to cri0
        assert reopened.score_all()[_row(reopened, "doc1")] > 0
    finally:
        reopened.close()


def test_a_new_catalog_order_drops_the_table(brain: Brain, clock: ManualClock) -> None:
    order = _order(brain)
    _watch(brain, clock, ["cri0"])
    brain.apply_cowatch(1, [(order.index("cri0"), [(order.index("doc3"), 40)])])
    assert brain.cowatch.matrix(brain.catalog) is not None
    brain.sync.set_cursors({CATALOG_ORDER_CURSOR: json.dumps(brain.catalog.ids)})
    assert brain.cowatch.matrix(brain.catalog) is None
    assert brain.cowatch.version() == 0


@pytest.mark.parametrize(
    ("version", "rows", "message"),
    [
        (1, [(999, [(1, 1)])], "source position 999"),
        (1, [(0, [(1, -1)])], "negative count"),
        (1, [(0, [(999, 1)])], "outside the catalog"),
        (0, [(0, [(1, 1)])], "older than the one held"),
    ],
)
def test_bad_pages_are_refused_and_store_nothing(
    brain: Brain, version: int, rows: list[tuple[int, list[tuple[int, int]]]], message: str
) -> None:
    _order(brain)
    brain.apply_cowatch(1, [(2, [(3, 4)])])
    with pytest.raises(InputError, match=message):
        brain.apply_cowatch(version, rows)
    assert brain.cowatch.version() == 1


def test_a_cowatch_pool_lets_pairs_lift_only_what_the_household_already_ranks(
    tmp_path: Path, clock: ManualClock, brain: Brain
) -> None:
    order = _order(brain)
    pos = {item: i for i, item in enumerate(order)}
    _watch(brain, clock, ["cri0"])  # Heat
    # Forged-looking pairs: Heat → a documentary, far from anything the household watched.
    brain.apply_cowatch(1, [(pos["cri0"], [(pos["doc3"], 200)])])
    assert int(np.argmax(brain.score_all())) == _row(brain, "doc3")
    brain.close()
    from omega.brain import BrainConfig

    gated = BrainConfig(codebook_cells=6, cowatch_pool=5)
    reopened = Brain.open(tmp_path / "tv", clock=clock, config=gated)
    try:
        scores = reopened.score_all()
        assert int(np.argmax(scores)) != _row(reopened, "doc3")
        top = {r.item_id for r in reopened.recommend(5)}
        assert "doc3" not in top and top <= {f"cri{i}" for i in range(12)}
    finally:
        reopened.close()


def test_a_limit_hands_fewer_pairs_and_keeps_the_rest_for_later(
    brain: Brain, clock: ManualClock
) -> None:
    _order(brain)
    _watch(brain, clock, ["cri0", "cri1", "cri2", "cri3"])  # 3 + 2 + 1 pairs within 3
    assert len(brain.pairs_to_contribute(1, limit=2)) == 2
    assert brain.pairs_to_contribute(2, limit=0) == []
    assert len(brain.pairs_to_contribute(3)) == 4  # none lost to the limits
    with pytest.raises(InputError, match="limit"):
        brain.pairs_to_contribute(4, limit=-1)


def test_a_well_backed_neighbour_outweighs_a_barely_released_one() -> None:
    """Rows are divided by the square root of their degree (``cowatch_degree_exponent``
    0.5): a neighbour 150 TVs went on to from a busy title beats one 3 TVs went on to
    from the last title; dividing by the whole degree drowned the busy title's rows."""
    from omega.brain import BrainConfig
    from omega.brain._store_cowatch import CowatchRows
    from omega.brain.cowatch import CowatchMatrix

    # Title 0 → 2 (3 TVs); title 1 → 3 (150 TVs) and → 4..13 (15 TVs each).
    sources = np.array([0, 1] + [1] * 10, np.int64)
    neighbours = np.array([2, 3, *range(4, 14)], np.int64)
    counts = np.array([3.0, 150.0] + [15.0] * 10, np.float32)
    rows = CowatchRows(sources, neighbours, counts)
    history = [(0, 1.0), (1, 0.7)]  # the household watched 1, then 0
    ranked = {}
    for exponent in (1.0, 0.5):
        config = BrainConfig(cowatch_backward=0.0, cowatch_degree_exponent=exponent)
        matrix = CowatchMatrix.build(rows, np.arange(14, dtype=np.int64), config)
        ranked[exponent] = int(np.argmax(matrix.scores(matrix.edges(history), 14)))
    assert ranked == {1.0: 2, 0.5: 3}
    assert BrainConfig().cowatch_degree_exponent == 0.5
    with pytest.raises(ConfigError, match="cowatch_degree_exponent"):
        BrainConfig(cowatch_degree_exponent=2.0)


def test_a_thin_pair_does_not_outrank_the_households_own_taste(
    brain: Brain, clock: ManualClock
) -> None:
    """The co-watch signal is on the table's scale, not the household's: a pair barely
    released (3 TVs) from its only title, in a table whose sources point to their best
    neighbours with hundreds of TVs, lifts the title a little and does not put it first.
    Divided by the household's own best score it scored 1, as much as a pair the whole
    fleet backs, and outranked every title of the household's genre."""
    order = _order(brain)
    pos = {item: i for i, item in enumerate(order)}
    _watch(brain, clock, ["cri0"])  # Heat
    before = brain.score_all()
    strong = [(pos[a], [(pos[b], 300)]) for a, b in (("ani0", "ani1"), ("doc0", "doc1"))]
    brain.apply_cowatch(1, sorted([(pos["cri0"], [(pos["doc3"], 3)]), *strong]))
    scores = brain.score_all()
    doc3 = _row(brain, "doc3")
    assert scores[doc3] > before[doc3]  # still lifted…
    assert brain.catalog.ids[int(np.argmax(scores))].startswith("cri")  # …not first
    signals = {r.item_id: r.signals["cowatch"] for r in brain.recommend(20)}
    assert 0.0 < signals["doc3"] < 0.1


def test_cowatch_scores_are_on_the_tables_scale_and_capped() -> None:
    """``full_score``: the median source's best entry times the history's weights; a
    title every recent title points to that strongly scores 1, and never more."""
    from omega.brain import BrainConfig
    from omega.brain._store_cowatch import CowatchRows
    from omega.brain.cowatch import CowatchMatrix, typical_best

    # Sources 0, 1, 2 → 3 with 4, 16 and 64 TVs; no backward weight, whole degree.
    rows = CowatchRows(
        np.array([0, 1, 2], np.int64), np.array([3, 3, 3], np.int64), np.array([4.0, 16, 64])
    )
    config = BrainConfig(
        cowatch_backward=0.0, cowatch_degree_exponent=0.0, cowatch_recent=2, cowatch_decay=0.5
    )
    matrix = CowatchMatrix.build(rows, np.arange(4, dtype=np.int64), config)
    assert typical_best(matrix.matrix) == 16.0
    assert matrix.full_score == 16.0 * 1.5
    thin = matrix.scores(matrix.edges([(0, 1.0)]), 4)
    assert thin[3] == pytest.approx(4 / 24) and thin[:3].tolist() == [0, 0, 0]
    assert matrix.scores(matrix.edges([(2, 1.0), (1, 0.5)]), 4)[3] == 1.0  # 72 / 24, capped
    assert typical_best(matrix.matrix[:0]) == 1.0  # an empty table


def test_likely_first_puts_the_rarer_titles_popularity_between_closeness_and_recency() -> None:
    from omega.brain.cowatch import likely_first

    popularity = {1: 1.0, 2: 0.8, 3: 0.1}
    # Gap 1: (5,1) (1,2) (2,3) (3,4); gap 2: (5,2) (1,3) (2,4); gap 3: (5,3) (1,4).
    assert likely_first([5, 1, 2, 3, 4], 3, popularity) == [
        (1, 2),
        (2, 3),
        (3, 4),
        (5, 1),
        (1, 3),
        (2, 4),
        (5, 2),
        (1, 4),
        (5, 3),
    ]
    assert likely_first([5, 1, 2, 3, 4], 3, {}) == ordered_pairs([5, 1, 2, 3, 4], 3)


def test_a_tv_spends_its_budget_first_on_pairs_other_tvs_likely_share(
    brain: Brain, clock: ManualClock
) -> None:
    """With a released popularity list, of equally close pairs those of popular titles
    come first, before more recent ones with a title no list names: a pair helps only
    once k TVs sent it."""
    from omega.protocol.messages import ItemScore

    order = _order(brain)
    pos = {item: i for i, item in enumerate(order)}
    _watch(brain, clock, ["cri0", "cri1", "doc4", "doc5"])
    brain.sync.apply_release(
        version=1,
        patterns=[],
        removed=[],
        trends=[],
        popular=[ItemScore(item_id="cri0", score=1.0), ItemScore(item_id="cri1", score=0.5)],
    )
    # The most recent first would start with (doc4, doc5).
    assert brain.pairs_to_contribute(1, limit=1) == [(pos["cri0"], pos["cri1"])]
    assert brain.pairs_to_contribute(2, limit=2) == [
        (pos["doc4"], pos["doc5"]),
        (pos["cri1"], pos["doc4"]),
    ]


def test_pairs_come_from_the_whole_history_not_only_the_newest_titles() -> None:
    from omega.brain import BrainConfig

    assert BrainConfig().cowatch_lookback >= 2000  # a heavy MovieLens viewer's history


def test_a_reopened_brain_reads_back_the_table_it_applied(
    brain: Brain, clock: ManualClock, tmp_path: Path
) -> None:
    """The stored table, grouped by source on open, builds the very matrix the pages
    built in memory: sources in any order, replaced, emptied."""
    _order(brain)
    rng = np.random.default_rng(3)
    n = len(brain.catalog)
    for version in range(1, 6):
        page = []
        for source in sorted(rng.choice(n, 8, replace=False).tolist()):
            found = rng.choice(n, int(rng.integers(0, 5)), replace=False).tolist()
            counts = rng.integers(3, 60, len(found)).tolist()
            page.append((source, list(zip(found, counts, strict=True))))
        brain.apply_cowatch(version, page)
    held = brain.cowatch.matrix(brain.catalog)
    brain.close()
    reopened = Brain.open(tmp_path / "tv", clock=clock)
    try:
        read = reopened.cowatch.matrix(reopened.catalog)
        assert held is not None and read is not None and held.matrix.nnz > 20
        for part in ("data", "indices", "indptr"):
            assert getattr(held.matrix, part).tobytes() == getattr(read.matrix, part).tobytes()
        assert held.full_score == read.full_score
    finally:
        reopened.close()
