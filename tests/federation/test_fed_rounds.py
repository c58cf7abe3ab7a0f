from __future__ import annotations

from collections.abc import Callable

import pytest
from _fed_helpers import NOW, codebook, pattern, push

from omega.federation import FederationConfig, run_round
from omega.federation.rounds import STEPS
from omega.storage import Storage

CONFIG = FederationConfig()


def seed_fleet(store: Storage, viewers: int = 4) -> None:
    store.put_codebook(codebook())
    for i in range(viewers):
        push(store, f"v{i}", added=[pattern((1, 2)), pattern((3,), success=0.8)])


def test_round_releases_then_is_unchanged_then_removes(fed_store: Storage) -> None:
    seed_fleet(fed_store)
    first = run_round(fed_store, CONFIG, now=NOW + 10, worker_id="w1")
    assert first.status == "released"
    assert (first.applied, first.live, first.released, first.upserted) == (8, 8, 2, 2)
    version, released = fed_store.current_release()
    assert version == first.version == 1
    assert sorted(p.cells for p in released) == [(1, 2), (3,)]
    assert all(p.version == 1 and p.viewers == 4 for p in released)
    assert fed_store.release_delta(since_version=0, limit=10).version == 1

    again = run_round(fed_store, CONFIG, now=NOW + 20, worker_id="w1")
    assert again.status == "unchanged"
    assert fed_store.current_release()[0] == 1

    # Two viewers withdraw the transition: 2 backers left, below consensus → removed.
    for i in range(2):
        push(fed_store, f"v{i}", removed=["recommendation-1-2"], batch="b2")
    third = run_round(fed_store, CONFIG, now=NOW + 30, worker_id="w1")
    assert (third.status, third.removed, third.version) == ("released", 1, 2)
    delta = fed_store.release_delta(since_version=1, limit=10)
    assert delta.removed == [released[0].id if released[0].cells == (1, 2) else released[1].id]
    assert [p.cells for p in fed_store.current_release()[1]] == [(3,)]


def test_same_cluster_keeps_its_id_across_rounds(fed_store: Storage) -> None:
    seed_fleet(fed_store, viewers=3)
    run_round(fed_store, CONFIG, now=NOW + 10, worker_id="w1")
    ids = {p.cells: p.id for p in fed_store.current_release()[1]}
    for i in range(3, 30):  # many more viewers: the weight moves, the id does not
        push(fed_store, f"v{i}", added=[pattern((1, 2))])
    result = run_round(fed_store, CONFIG, now=NOW + 20, worker_id="w1")
    assert (result.status, result.upserted, result.removed) == ("released", 1, 0)
    (updated,) = [p for p in fed_store.current_release()[1] if p.cells == (1, 2)]
    assert updated.id == ids[(1, 2)]
    assert updated.viewers == 30
    assert updated.version == 2


def test_no_codebook_releases_nothing(fed_store: Storage) -> None:
    push(fed_store, "v0", added=[pattern((1, 2))])
    result = run_round(fed_store, CONFIG, now=NOW + 10, worker_id="w1")
    assert (result.status, result.version, result.applied) == ("no_codebook", 0, 1)


def test_old_patterns_are_pruned(fed_store: Storage) -> None:
    seed_fleet(fed_store)
    run_round(fed_store, CONFIG, now=NOW + 10, worker_id="w1")
    later = run_round(fed_store, CONFIG, now=NOW + CONFIG.max_age_s + 60, worker_id="w1")
    assert (later.pruned, later.live, later.released, later.removed) == (8, 0, 0, 2)
    assert fed_store.current_release()[1] == []


def test_rounds_forget_idempotency_records_past_their_retention(fed_store: Storage) -> None:
    push(fed_store, "v0", added=[pattern((1, 2))], batch="old", now=NOW)
    push(fed_store, "v0", added=[pattern((3, 4))], batch="new", now=NOW + 3_600)
    run_round(fed_store, CONFIG, now=NOW + CONFIG.batch_retention_s + 60, worker_id="w1")
    # "old" is forgotten (a retry would count as new); "new" is still within the window.
    assert fed_store.prune_batches(created_before=NOW + 1) == 0
    assert fed_store.prune_batches(created_before=NOW + 3_601) == 1


class Died(Exception):
    """Stands in for the worker process dying at that point."""


@pytest.mark.parametrize("step", STEPS)
def test_worker_dying_mid_round_releases_nothing(
    open_fed_store: Callable[[], Storage], step: str
) -> None:
    store = open_fed_store()
    seed_fleet(store)

    def die(name: str) -> None:
        if name == step:
            raise Died(name)

    with pytest.raises(Died):
        run_round(store, CONFIG, now=NOW + 10, worker_id="w1", on_step=die)
    store.close()  # the dead worker's connections go away with it

    survivor = open_fed_store()
    assert survivor.current_release() == (0, [])
    delta = survivor.release_delta(since_version=0, limit=100)
    assert (delta.version, delta.patterns, delta.removed, delta.trends) == (0, [], [], [])
    # Nothing is lost either: the next worker releases everything.
    result = run_round(survivor, CONFIG, now=NOW + 20, worker_id="w2")
    assert (result.status, result.version, result.released) == ("released", 1, 2)


def test_two_workers_race_one_release_wins(open_fed_store: Callable[[], Storage]) -> None:
    first, second = open_fed_store(), open_fed_store()
    seed_fleet(first)
    inner: list[str] = []

    def other_commits_first(name: str) -> None:
        if name == "committing" and not inner:
            inner.append(run_round(second, CONFIG, now=NOW + 10, worker_id="w2").status)

    lost = run_round(first, CONFIG, now=NOW + 10, worker_id="w1", on_step=other_commits_first)
    assert inner == ["released"]
    assert (lost.status, lost.version) == ("conflict", 0)
    version, released = first.current_release()
    assert version == 1
    assert len(released) == 2


def test_concurrent_workers_apply_each_contribution_once(
    open_fed_store: Callable[[], Storage],
) -> None:
    import threading

    setup = open_fed_store()
    setup.put_codebook(codebook())
    for i in range(40):
        push(setup, f"v{i}", added=[pattern((1, 2)), pattern((i % 5 + 3,))])
    config = FederationConfig(apply_batch=7)
    results = []
    stores = [open_fed_store() for _ in range(3)]

    def work(store: Storage, name: str) -> None:
        results.append(run_round(store, config, now=NOW + 10, worker_id=name))

    threads = [threading.Thread(target=work, args=(s, f"w{i}")) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.applied for r in results) == 80
    final = run_round(setup, config, now=NOW + 20, worker_id="last")
    assert final.live == 80
    version, released = setup.current_release()
    assert {p.cells for p in released} == {(1, 2), *((c,) for c in range(3, 8))}
    assert version == sum(r.status == "released" for r in [*results, final])
