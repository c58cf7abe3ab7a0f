"""Central DP on released co-watch counts (``omega.federation.cowatch_dp``), on SQLite and
on PostgreSQL: a fleet's real STAR reports folded through the co-watch step, then
released from noisy counts; with DP off the rows are what they always were."""

from __future__ import annotations

import threading
import time

import pytest
from storage_records import Batches, OpenStore, cowatch_rows, sealed_batch

from omega.federation.cowatch import CowatchCounting, Ranking, fold_cowatch, release_private
from omega.federation.cowatch_dp import Calibration, CowatchPrivacy, calibrate, noisy_counts
from omega.federation.rounds import _count_cowatch
from omega.protocol.cowatch import quantise
from omega.protocol.cowatch_wire import ReportBatch
from omega.storage import Storage
from omega.storage.cowatch import PrivacyLedger, PrivacySpend

#: (a, b) → distinct TVs: far above the test's threshold, near it, and at k.
FLEET = {(1, 2): 30, (1, 3): 3, (4, 5): 14, (6, 7): 3}
#: ε large and L0 small, so the noise is tiny: the threshold is 6 above k − 1, i.e. 8
#: TVs; a pair at 3 TVs is kept with probability ~e⁻²⁵, one at 14 dropped ~e⁻²⁵.
SHARP = CowatchPrivacy(20.0, 1e-9, per_epoch=4)


def _fleet_batch(store: Storage) -> ReportBatch:
    return sealed_batch(store, "b1", FLEET)


def _counting(store: Storage, privacy: CowatchPrivacy | None) -> CowatchCounting:
    return CowatchCounting(source=Batches(_fleet_batch(store)), privacy=privacy)


def test_without_dp_the_rows_are_the_k_anonymous_counts(store: Storage) -> None:
    step = fold_cowatch(store, _counting(store, None), now=1.0)
    assert step.fold is not None and (step.fold.pairs, step.fold.rows) == (4, 3)
    assert cowatch_rows(store) == {
        1: [(2, quantise(30)), (3, 3)],
        4: [(5, quantise(14))],
        6: [(7, 3)],
    }
    assert store.cowatch.privacy_ledger() == PrivacyLedger(0, 0.0, 0.0)


def test_with_dp_only_counts_far_above_the_threshold_are_released(store: Storage) -> None:
    counting = _counting(store, SHARP)
    step = fold_cowatch(store, counting, now=1.0)
    assert step.fold is not None and (step.fold.pairs, step.fold.rows) == (4, 0)
    assert cowatch_rows(store) == {}  # the fold releases nothing: the private release does
    release = release_private(store, counting, now=2.0)
    assert (release.pairs, release.released, release.rows, release.version) == (4, 2, 2, 1)
    rows = cowatch_rows(store)
    assert set(rows) == {1, 4}  # (1, 3) and (6, 7), at 3 TVs, are withheld
    [(two, noisy_30)] = rows[1]
    [(five, noisy_14)] = rows[4]
    assert (two, five) == (2, 5)
    # the noise is OpenDP's (scale 0.2): within 5 of the count but with odds of ~e⁻²⁵
    assert noisy_30 in {quantise(c) for c in range(25, 36)}
    assert noisy_14 in {quantise(c) for c in range(9, 20)}
    assert store.cowatch.privacy_ledger() == PrivacyLedger(1, 20.0, 1e-9)


def test_each_release_spends_again_and_only_rounds_that_folded_release(store: Storage) -> None:
    """Basic composition: the ledger adds a release's (ε, δ) each time; a round with no
    batch neither releases nor spends. Seeded noise, so the rows are reproducible."""
    seeded = CowatchPrivacy(20.0, 1e-9, per_epoch=4, seed=7)
    counting = _counting(store, seeded)
    assert _count_cowatch(store, counting, now=1.0).rows == 2  # one batch folded, one release
    assert store.cowatch.privacy_ledger() == PrivacyLedger(1, 20.0, 1e-9)
    assert _count_cowatch(store, counting, now=2.0).rows == 0  # no batch: nothing spent
    assert store.cowatch.privacy_ledger().releases == 1
    release_private(store, counting, now=3.0)
    release_private(store, counting, now=4.0)
    ledger = store.cowatch.privacy_ledger()
    assert (ledger.releases, ledger.epsilon) == (3, 60.0)
    assert ledger.delta == pytest.approx(3e-9)
    assert set(cowatch_rows(store)) == {1, 4}


def test_a_row_whose_pairs_all_fall_below_the_threshold_is_withdrawn(store: Storage) -> None:
    """Released k-anonymous first (DP off), then with DP on: the rows of pairs at 3 TVs
    are withdrawn (an empty row), the others re-released from noisy counts."""
    fold_cowatch(store, _counting(store, None), now=1.0)
    counting = CowatchCounting(source=Batches(ReportBatch(batch_id="")), privacy=SHARP)
    release = release_private(store, counting, now=2.0)
    # source 1 loses (1, 3) and 6 is withdrawn; 4 changes only if its quantised count did
    assert release.version == 2 and release.rows in (2, 3)
    changed = {
        r.source: r.neighbours for r in store.cowatch.rows_after(version=1, source=-1, limit=10)
    }
    assert changed[6] == [] and [b for b, _ in changed[1]] == [2]
    assert set(cowatch_rows(store)) == {1, 4}


def test_the_threshold_is_one_above_what_opendp_proves() -> None:
    """opendp/opendp#2922: its map proves δ for keeping counts > τ, it keeps ≥ τ."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    space = (
        dp.map_domain(dp.atom_domain(T="i64"), dp.atom_domain(T="i64")),
        dp.l01inf_distance(dp.absolute_distance(T="i64")),
    )
    c = calibrate(4.0, 1e-6, 128)
    assert c.scale == 32.0

    def delta(threshold: int) -> float:
        measurement = dp.m.make_laplace_threshold(*space, scale=c.scale, threshold=threshold)
        return float(measurement.map((128, 128, 1))[1])

    assert delta(c.threshold - 1) <= 1e-6 < delta(c.threshold - 2)
    assert calibrate(8.0, 1e-6, 128) == Calibration(16.0, 290)


def test_a_fold_committed_while_a_private_release_runs_stays_owed(open_store: OpenStore) -> None:
    """Another worker folds a batch while a release draws its noise: the release did not
    read that batch's pair, so the fold must stay owed (PostgreSQL runs the two at once
    in READ COMMITTED; the release takes the owed count's row lock first)."""
    store, other = open_store(), open_store()
    fold_cowatch(store, _counting(store, SHARP), now=1.0)
    late = sealed_batch(store, "b2", {(8, 9): 20})
    failures: list[BaseException] = []

    def fold_late() -> None:
        try:
            fold_cowatch(other, CowatchCounting(source=Batches(late), privacy=SHARP), now=1.5)
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)

    worker = threading.Thread(target=fold_late)
    draw = noisy_counts(SHARP, k=3)

    def noise(tvs: list[int]) -> list[int | None]:
        worker.start()  # inside the release's transaction, after it read the pairs
        time.sleep(0.5)  # time enough for the fold to commit, were it not held back
        return draw(tvs)

    release = store.cowatch.release_private(
        noise=noise, rank=Ranking(20), spend=PrivacySpend(20.0, 1e-9), now=2.0
    )
    worker.join(timeout=60)
    assert not worker.is_alive() and failures == []
    assert release.pairs == 4  # the late pair (8, 9) was not in this release
    assert store.cowatch.unreleased_folds() == 1  # so the late fold is still owed
    again = release_private(store, _counting(store, SHARP), now=3.0)
    assert again.pairs == 5 and store.cowatch.unreleased_folds() == 0
    assert 8 in cowatch_rows(store)


def test_a_round_that_finds_the_owed_fold_released_meanwhile_spends_nothing(
    open_store: OpenStore,
) -> None:
    """Two replicas' rounds at once: one folded a batch and is making its private release
    when the other's co-watch step reads the fold as owed. The other's release, held back
    until the first commits, finds nothing owed any more: it must neither release nor
    spend (one fold, one release, one charge)."""
    store, other = open_store(), open_store()
    fold_cowatch(store, _counting(store, SHARP), now=1.0)
    assert store.cowatch.unreleased_folds() == 1
    counted: list[object] = []

    def other_round() -> None:
        try:  # no batch for this replica: only the fold the first one owes
            empty = CowatchCounting(source=Batches(ReportBatch(batch_id="")), privacy=SHARP)
            counted.append(_count_cowatch(other, empty, now=1.5))
        except BaseException as exc:  # surfaced by the assertion below
            counted.append(exc)

    worker = threading.Thread(target=other_round)
    draw = noisy_counts(SHARP, k=3)

    def noise(tvs: list[int]) -> list[int | None]:
        worker.start()  # inside the first release's transaction
        time.sleep(0.5)  # time enough for the other round to read the owed count
        return draw(tvs)

    store.cowatch.release_private(
        noise=noise, rank=Ranking(20), spend=PrivacySpend(20.0, 1e-9), now=2.0
    )
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert [getattr(c, "rows", c) for c in counted] == [0]
    assert store.cowatch.privacy_ledger() == PrivacyLedger(1, 20.0, 1e-9)
    assert store.cowatch.unreleased_folds() == 0


def test_a_batch_handed_out_again_owes_no_second_release(store: Storage) -> None:
    """The helper hands a batch out again when its ack was lost: folding it twice changes
    no pair, so it owes no release of its own (a second one would spend ε on fresh noise
    over the same counts)."""
    batch = _fleet_batch(store)
    first = fold_cowatch(store, CowatchCounting(source=Batches(batch), privacy=SHARP), now=1.0)
    assert first.fold is not None and first.fold.pairs == 4
    assert store.cowatch.unreleased_folds() == 1
    again = fold_cowatch(store, CowatchCounting(source=Batches(batch), privacy=SHARP), now=2.0)
    assert again.fold is not None and (again.fold.stored, again.fold.pairs) == (0, 0)
    assert store.cowatch.unreleased_folds() == 1
