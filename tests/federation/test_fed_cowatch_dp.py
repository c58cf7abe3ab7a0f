"""A round's co-watch step with central DP on, when it fails half-way (SQLite and
PostgreSQL): a fold left unreleased is released by the next round even with no new
batch, a storage error costs the round its co-watch update but not its pattern release,
and the ε ledger counts only the releases that were made."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Callable, Iterator

import psycopg
import pytest
from _fed_helpers import NOW, codebook, pattern, push
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from omega.federation import FederationConfig, RoundResult, run_round
from omega.federation.cowatch import CowatchCounting
from omega.federation.cowatch_dp import CowatchPrivacy
from omega.protocol.cowatch import make_report, seal_report
from omega.protocol.cowatch_wire import ReportBatch
from omega.storage import Storage
from omega.storage.cowatch import PrivacyLedger

CONFIG = FederationConfig()
#: (a, b) → distinct TVs: two pairs far above the threshold below, two at k.
FLEET = {(1, 2): 30, (1, 3): 3, (4, 5): 14, (6, 7): 3}
#: Tiny noise (ε 20, L0 4): kept exactly the pairs at 14 and 30 TVs (odds ~e⁻²⁵ otherwise).
SHARP = CowatchPrivacy(20.0, 1e-9, per_epoch=4, seed=7)


class Died(Exception):
    """Stands in for the worker process dying at that point."""


class Helper:
    """The helper as the co-watch step reads it: a batch is handed out again until it is
    acknowledged; ``die_after`` batches handed out, the worker dies asking for another."""

    def __init__(self, batches: list[ReportBatch], *, die_after: int | None = None) -> None:
        self.batches = batches
        self.handed = 0
        self.die_after = die_after

    def cowatch_batch(self) -> ReportBatch:
        if self.die_after is not None and self.handed >= self.die_after:
            raise Died("after the fold, before the private release")
        self.handed += 1
        return self.batches[0] if self.batches else ReportBatch(batch_id="")

    def cowatch_ack(self, batch_id: str) -> None:
        self.batches = [b for b in self.batches if b.batch_id != batch_id]


def _fleet_batch(store: Storage) -> ReportBatch:
    """Each TV's report of its pair, sealed to the store's key: what STAR delivers."""
    key = X25519PrivateKey.from_private_bytes(store.cowatch.keys().hpke_key).public_key()
    reports = []
    for (a, b), tvs in FLEET.items():
        r = hashlib.sha256(f"oprf {a} {b}".encode()).digest()  # the OPRF's output stand-in
        reports += [seal_report(make_report(r, a, b, k=3), key) for _ in range(tvs)]
    return ReportBatch(batch_id="b1", reports=reports)


def _seed_patterns(store: Storage) -> None:
    """Four viewers backing two patterns: a round has a pattern release to make."""
    store.put_codebook(codebook())
    for i in range(4):
        push(store, f"v{i}", added=[pattern((1, 2)), pattern((3,), success=0.8)])


def _rows(store: Storage) -> dict[int, list[int]]:
    rows = store.cowatch.rows_after(version=0, source=-1, limit=100)
    return {row.source: [b for b, _ in row.neighbours] for row in rows if row.neighbours}


def _round(store: Storage, helper: Helper, at: float) -> RoundResult:
    counting = CowatchCounting(source=helper, privacy=SHARP)
    return run_round(store, CONFIG, now=NOW + at, worker_id="w1", cowatch=counting)


@contextlib.contextmanager
def _refusing(url: str, table: str) -> Iterator[None]:
    """Every INSERT into ``table`` fails in the database itself (a trigger), as a full
    disk or a lost connection would fail it, until the block ends."""
    name = f"refuse_{table}"
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            conn.execute(
                f"CREATE TRIGGER {name} BEFORE INSERT ON {table}"
                " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
            conn.commit()
            yield
            conn.execute(f"DROP TRIGGER {name}")
            conn.commit()
        return
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
        )
        conn.execute(
            f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()"
        )
        yield
        conn.execute(f"DROP TRIGGER {name} ON {table}")


def test_a_fold_a_dying_round_left_unreleased_is_released_by_the_next_round(
    open_fed_store: Callable[[], Storage],
) -> None:
    store = open_fed_store()
    _seed_patterns(store)
    helper = Helper([_fleet_batch(store)], die_after=1)
    with pytest.raises(Died):
        _round(store, helper, 10)
    assert helper.batches == []  # folded and acknowledged: the helper will not send it again
    store.close()  # the dead worker's connections go away with it

    survivor = open_fed_store()
    assert survivor.cowatch.unreleased_folds() == 1
    assert survivor.cowatch.privacy_ledger() == PrivacyLedger(0, 0.0, 0.0)
    assert _rows(survivor) == {}
    result = _round(survivor, Helper([]), 20)  # no batch this round
    assert result.cowatch_rows == 2 and result.cowatch_error is None
    assert _rows(survivor) == {1: [2], 4: [5]}
    assert survivor.cowatch.privacy_ledger() == PrivacyLedger(1, 20.0, 1e-9)
    assert survivor.cowatch.unreleased_folds() == 0
    # owed nothing, folded nothing: the next round neither releases nor spends
    assert _round(survivor, Helper([]), 30).cowatch_rows == 0
    assert survivor.cowatch.privacy_ledger().releases == 1


def test_a_failed_private_release_costs_the_round_only_its_cowatch_update(
    fed_store: Storage, fed_storage_url: str
) -> None:
    _seed_patterns(fed_store)
    helper = Helper([_fleet_batch(fed_store)])
    with _refusing(fed_storage_url, "cowatch_privacy"):  # the ledger's row: the release's tx
        failed = _round(fed_store, helper, 10)
    assert failed.status == "released" and failed.released == 2
    assert len(fed_store.current_release()[1]) == 2  # the patterns were not lost
    error = failed.cowatch_error
    assert "the private co-watch release failed (no ε spent)" in error
    assert "refused by the test" in error
    assert failed.cowatch_rows == 0
    assert fed_store.cowatch.privacy_ledger() == PrivacyLedger(0, 0.0, 0.0)  # nothing charged
    assert fed_store.cowatch.unreleased_folds() == 1 and _rows(fed_store) == {}

    retried = _round(fed_store, helper, 20)  # no new batch: the fold is released now
    assert (retried.cowatch_rows, retried.cowatch_error) == (2, None)
    assert _rows(fed_store) == {1: [2], 4: [5]}
    assert fed_store.cowatch.privacy_ledger() == PrivacyLedger(1, 20.0, 1e-9)
    assert fed_store.cowatch.unreleased_folds() == 0


def test_a_fold_that_fails_is_folded_again_next_round(
    fed_store: Storage, fed_storage_url: str
) -> None:
    """The batch is not acknowledged, so the helper hands it out again; nothing was
    folded, so nothing is owed and nothing is spent until then."""
    _seed_patterns(fed_store)
    helper = Helper([_fleet_batch(fed_store)])
    with _refusing(fed_storage_url, "cowatch_shares"):
        failed = _round(fed_store, helper, 10)
    assert failed.status == "released"
    assert "a co-watch batch was not folded" in failed.cowatch_error
    assert [b.batch_id for b in helper.batches] == ["b1"]  # not acknowledged
    assert fed_store.cowatch.unreleased_folds() == 0
    assert fed_store.cowatch.privacy_ledger().releases == 0

    again = _round(fed_store, helper, 20)
    assert (again.cowatch_rows, again.cowatch_error) == (2, None)
    assert helper.batches == [] and _rows(fed_store) == {1: [2], 4: [5]}
    assert fed_store.cowatch.privacy_ledger().releases == 1
