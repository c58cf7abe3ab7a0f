"""The spread rule in the co-watch release (``Ranking.spread``), on SQLite and on
PostgreSQL: a pair pointing at a title nobody goes on from is not released, so it takes
no honest neighbour's place in a bounded row; once that title's own row grows, the rows
pointing at it are re-ranked in the same fold."""

from __future__ import annotations

from storage_records import Batches, cowatch_rows, sealed_batch

from omega.federation.cowatch import CowatchCounting, Ranking, fold_cowatch, release_private
from omega.federation.cowatch_dp import CowatchPrivacy
from omega.protocol.cowatch import quantise
from omega.storage import Storage

#: Title 1 is watched by many; 2 is the coalition's target (no row of its own until the
#: second batch); 3 is an honest neighbour of 1 with a row of its own (back to 1).
FORGED = {(1, 2): 30, (1, 3): 6, (3, 1): 4}
#: Later, viewers go on from 2 too: its best count as a source becomes 15.
LATER = {(2, 1): 15}


def test_the_rule_ranks_what_the_neighbours_own_rows_back() -> None:
    pairs = [(2, 30, 0), (3, 6, 4), (5, 9, 3)]
    assert Ranking(20)(pairs) == [(2, quantise(30)), (5, quantise(9)), (3, quantise(6))]
    # 30 > 2 × 0 and 9 > 2 × 3 are left out; 6 ≤ 2 × 4 stays
    assert Ranking(20, spread=2.0)(pairs) == [(3, quantise(6))]
    assert not Ranking(20).follows and Ranking(20, spread=2.0).follows


def test_without_the_rule_a_forged_pair_takes_the_bounded_row(store: Storage) -> None:
    counting = CowatchCounting(source=Batches(sealed_batch(store, "b1", FORGED)), top=1)
    fold_cowatch(store, counting, now=1.0)
    assert cowatch_rows(store) == {1: [(2, quantise(30))], 3: [(1, 4)]}


def test_with_the_rule_the_honest_neighbour_keeps_its_place(store: Storage) -> None:
    batches = Batches(sealed_batch(store, "b1", FORGED), sealed_batch(store, "b2", LATER))
    counting = CowatchCounting(source=batches, top=1, spread=2.0)
    first = fold_cowatch(store, counting, now=1.0)
    assert first.fold is not None and first.fold.rows == 2
    assert cowatch_rows(store) == {1: [(3, quantise(6))], 3: [(1, 4)]}
    # 2's own row reaches 15 TVs: 30 ≤ 2 × 15, so 1's row (no pair of its own changed)
    # is re-ranked in the same fold and 2 leads it
    second = fold_cowatch(store, counting, now=2.0)
    assert second.fold is not None and second.fold.rows == 2  # rows 2 and 1
    assert cowatch_rows(store) == {1: [(2, quantise(30))], 2: [(1, quantise(15))], 3: [(1, 4)]}


def test_a_private_release_applies_the_rule_to_the_noisy_counts(store: Storage) -> None:
    # ε large, L0 small: noise of a count or two; 6 and 4 TVs would fall under the
    # noisy threshold, so the honest counts are raised to 14
    fleet = {(1, 2): 30, (1, 3): 14, (3, 1): 14}
    privacy = CowatchPrivacy(20.0, 1e-9, per_epoch=4, seed=7)
    counting = CowatchCounting(
        source=Batches(sealed_batch(store, "b1", fleet)), top=1, spread=2.0, privacy=privacy
    )
    fold_cowatch(store, counting, now=1.0)
    release_private(store, counting, now=2.0)
    rows = cowatch_rows(store)
    assert set(rows) == {1, 3}
    assert [b for b, _ in rows[1]] == [3]  # not the target, whose noisy row is empty


def test_a_recounted_pair_that_raises_a_best_re_ranks_the_rows_pointing_there(
    store: Storage,
) -> None:
    # 2's row is read at 3 TVs (too weak: 30 > 2 × 3), then recounted at 15
    batches = Batches(
        sealed_batch(store, "b1", {**FORGED, (2, 1): 3}), sealed_batch(store, "b2", {(2, 1): 12})
    )
    counting = CowatchCounting(source=batches, top=1, spread=2.0)
    fold_cowatch(store, counting, now=1.0)
    assert cowatch_rows(store)[1] == [(3, quantise(6))]
    second = fold_cowatch(store, counting, now=2.0)
    assert second.fold is not None and second.fold.pairs == 1  # the recount only
    assert cowatch_rows(store)[1] == [(2, quantise(30))]


def test_a_fold_under_another_ranking_re_ranks_every_row(store: Storage) -> None:
    """Turning the rule on during an attack reaches the rows already released, though
    the fold brings no pair of theirs."""
    off = CowatchCounting(source=Batches(sealed_batch(store, "b1", FORGED)), top=1)
    fold_cowatch(store, off, now=1.0)
    assert cowatch_rows(store)[1] == [(2, quantise(30))]
    on = CowatchCounting(source=Batches(sealed_batch(store, "b2", {(7, 8): 3})), top=1, spread=2.0)
    step = fold_cowatch(store, on, now=2.0)
    assert step.fold is not None and step.fold.rows == 1  # row 1; 7's row is empty
    assert cowatch_rows(store) == {1: [(3, quantise(6))], 3: [(1, 4)]}
    again = CowatchCounting(
        source=Batches(sealed_batch(store, "b3", {(7, 9): 3})), top=1, spread=2.0
    )
    step = fold_cowatch(store, again, now=3.0)
    assert step.fold is not None and step.fold.rows == 0  # same ranking: nothing to redo
