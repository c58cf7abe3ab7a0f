"""Idempotent ingestion, pending contributions, folding into the live set, pruning."""

from __future__ import annotations

import asyncio
import threading

import pytest
from storage_records import CODEBOOK, OpenStore, ack_all, digest, ingest, pattern, push, viewer

from omega.errors import ConflictError, InputError
from omega.protocol.messages import Pattern, PushAck
from omega.storage import Storage


def _live(store: Storage, *, codebook: str = CODEBOOK, after: float = 0.0) -> dict[str, float]:
    """viewer/pattern id → success rate of the live set."""
    return {
        f"{lp.viewer_id}/{lp.pattern.id}": lp.pattern.success_rate
        for lp in store.live_patterns(codebook_id=codebook, updated_after=after)
    }


def test_ingest_queues_accepted_patterns_and_removals(store: Storage) -> None:
    viewer(store, "v1")
    p = push("v1", "b1", added=[pattern("a"), pattern("b")], updated=[pattern("c")], removed=["z"])
    ack = ack_all(p, reject={"b"}, version=7)
    assert store.ingest(p, digest=digest(p), region="eu", ack=ack, now=5.0) == ack
    assert store.stats().pending_contributions == 3  # a, c, remove z; b was rejected


def test_ingest_is_idempotent_per_viewer_and_batch(store: Storage) -> None:
    viewer(store, "v1")
    viewer(store, "v2")
    p = push("v1", "b1", added=[pattern("a"), pattern("b")])
    first = ingest(store, p)
    retried = store.ingest(
        p, digest=digest(p), region="eu", ack=PushAck(batch_id="b1", server_version=99), now=200.0
    )
    assert retried == first  # the ack stored the first time, not the new one
    assert store.stats().pending_contributions == 2
    ingest(store, push("v2", "b1", added=[pattern("a")]))  # same batch id, other viewer
    assert store.stats().pending_contributions == 3


def test_reused_batch_id_with_another_payload_conflicts(store: Storage) -> None:
    viewer(store, "v1")
    ingest(store, push("v1", "b1", added=[pattern("a")]))
    other = push("v1", "b1", added=[pattern("a", success=0.95)])
    with pytest.raises(ConflictError, match="b1"):
        ingest(store, other)
    assert store.stats().pending_contributions == 1


@pytest.mark.parametrize("opened", [False, True], ids=["threads", "loop-connections"])
def test_awaited_ingest_is_the_same_contract(store: Storage, opened: bool) -> None:
    """``ingest_async`` (awaited on an event loop): stored once, retried acks, conflicts —
    on worker threads, and on the connections ``open_async`` gives the loop (PostgreSQL:
    one statement; its release version read there too)."""
    viewer(store, "v1")
    p = push("v1", "b1", added=[pattern("a"), pattern("b")], removed=["z"])
    ack = ack_all(p, reject={"b"}, version=3)

    async def scenario() -> None:
        if opened:
            await store.open_async()
        try:
            await checks()
            assert await store.release_version_async() == store.release_version()
        finally:
            await store.close_async()

    async def checks() -> None:
        first, again = await asyncio.gather(
            store.ingest_async(p, digest=digest(p), region="eu", ack=ack, now=5.0),
            store.ingest_async(p, digest=digest(p), region="eu", ack=ack, now=6.0),
        )
        assert first == again == ack
        other = push("v1", "b1", added=[pattern("a", success=0.95)])
        with pytest.raises(ConflictError, match="b1"):
            await store.ingest_async(
                other, digest=digest(other), region="eu", ack=ack_all(other), now=7.0
            )
        ghost = push("ghost", "b9", added=[pattern("a")])
        with pytest.raises(InputError, match="not registered"):
            await store.ingest_async(
                ghost, digest=digest(ghost), region="eu", ack=ack_all(ghost), now=8.0
            )

    asyncio.run(scenario())
    assert store.stats().pending_contributions == 2  # a and remove z, once


def test_a_cancelled_wait_still_commits_the_push(store: Storage) -> None:
    """Cancelling the awaiting request does not undo a push already handed to the store:
    the device's retry then gets the stored ack, as with a lost answer."""
    viewer(store, "v1")
    p = push("v1", "b1", added=[pattern("a")])

    async def scenario() -> None:
        task = asyncio.ensure_future(
            store.ingest_async(p, digest=digest(p), region="eu", ack=ack_all(p), now=1.0)
        )
        await asyncio.sleep(0)  # let it reach the store
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(500):  # the commit lands a moment later; the loop keeps running
            if store.stats().pending_contributions == 1:
                break
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert store.stats().pending_contributions == 1
    assert ingest(store, p) == ack_all(p)


def test_ingest_from_an_unknown_viewer_stores_nothing(store: Storage) -> None:
    with pytest.raises(InputError, match="not registered"):
        ingest(store, push("ghost", "b1", added=[pattern("a")]))
    assert store.stats().pending_contributions == 0


def test_ack_for_another_batch_is_refused(store: Storage) -> None:
    viewer(store, "v1")
    p = push("v1", "b1", added=[pattern("a")])
    with pytest.raises(InputError, match="batch"):
        store.ingest(p, digest=digest(p), region="eu", ack=PushAck(batch_id="b2"), now=1.0)
    assert store.stats().pending_contributions == 0


def test_concurrent_retries_of_one_push_apply_once(open_store: OpenStore) -> None:
    stores = [open_store() for _ in range(4)]
    viewer(stores[0], "v1")
    p = push("v1", "b1", added=[pattern(f"p{i}") for i in range(20)])
    acks: list[PushAck] = []
    barrier = threading.Barrier(len(stores))

    def retry(s: Storage) -> None:
        barrier.wait()
        acks.append(ingest(s, p))

    threads = [threading.Thread(target=retry, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(acks) == 4
    assert all(a == acks[0] for a in acks)
    assert stores[0].stats().pending_contributions == 20


def test_apply_pending_folds_adds_updates_and_removals(store: Storage) -> None:
    viewer(store, "v1")
    viewer(store, "v2")
    ingest(store, push("v1", "b1", added=[pattern("a"), pattern("b"), pattern("c")]))
    ingest(store, push("v2", "b1", added=[pattern("a", success=0.75)]))
    ingest(store, push("v1", "b2", updated=[pattern("a", success=0.9)], removed=["b", "zz"]))
    assert store.apply_pending(worker_id="w1", limit=100, now=300.0) == 7
    assert store.stats().pending_contributions == 0
    assert _live(store) == {"v1/a": 0.9, "v1/c": 0.8, "v2/a": 0.75}
    assert store.stats().live_patterns == 3
    live = store.live_patterns(codebook_id=CODEBOOK, updated_after=0.0)
    assert {lp.region for lp in live} == {"eu"}
    assert {lp.updated_at for lp in live} == {300.0}
    assert live[0].pattern == pattern("a", success=0.9)  # round trip of the whole pattern
    assert store.apply_pending(worker_id="w1", limit=100, now=301.0) == 0


def test_apply_pending_honours_the_limit_in_ingestion_order(store: Storage) -> None:
    viewer(store, "v1")
    ingest(store, push("v1", "b1", added=[pattern("a")]))
    ingest(store, push("v1", "b2", removed=["a"]))
    ingest(store, push("v1", "b3", added=[pattern("a", success=0.99)]))
    assert store.apply_pending(worker_id="w", limit=1, now=1.0) == 1
    assert _live(store) == {"v1/a": 0.8}
    assert store.apply_pending(worker_id="w", limit=1, now=2.0) == 1
    assert _live(store) == {}
    assert store.apply_pending(worker_id="w", limit=5, now=3.0) == 1
    assert _live(store) == {"v1/a": 0.99}
    with pytest.raises(InputError):
        store.apply_pending(worker_id="w", limit=0, now=4.0)


def test_two_workers_never_apply_the_same_contribution(open_store: OpenStore) -> None:
    setup = open_store()
    expected: dict[str, float] = {}
    for v in range(12):
        vid = f"v{v}"
        viewer(setup, vid)
        for b in range(5):
            pats = [pattern(f"p{i}", success=0.7 + 0.01 * b) for i in range(b, b + 4)]
            ingest(setup, push(vid, f"b{b}", added=pats, removed=[f"p{b - 1}"] if b else []))
        # p0..p3 from b0, each later batch re-adds p_b..p_b+3 and removes p_{b-1}
        expected.update({f"{vid}/p{i}": 0.74 for i in range(4, 8)})
    total = setup.stats().pending_contributions
    assert total == 12 * (5 * 4 + 4)

    applied: dict[str, int] = {}
    barrier = threading.Barrier(2)

    def work(name: str) -> None:
        worker = open_store()  # its own connection(s)
        barrier.wait()
        count = 0
        while n := worker.apply_pending(worker_id=name, limit=7, now=50.0):
            count += n
        applied[name] = count

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(applied.values()) == total
    assert setup.stats().pending_contributions == 0
    # Whatever order the workers committed in, the newest contribution per pattern won.
    assert _live(setup) == expected


def test_live_patterns_filter_by_codebook_and_update_time(store: Storage) -> None:
    viewer(store, "v1")
    ingest(store, push("v1", "b1", added=[pattern("a")]))
    store.apply_pending(worker_id="w", limit=10, now=100.0)
    ingest(store, push("v1", "b2", added=[pattern("b")]))
    ingest(store, push("v1", "b3", added=[pattern("c")], codebook="cb-2"))
    store.apply_pending(worker_id="w", limit=10, now=200.0)
    assert set(_live(store)) == {"v1/a", "v1/b"}
    assert set(_live(store, after=100.0)) == {"v1/b"}  # strictly after
    assert set(_live(store, after=200.0)) == set()
    assert set(_live(store, codebook="cb-2")) == {"v1/c"}


def test_prune_live_drops_old_patterns_only(store: Storage) -> None:
    viewer(store, "v1")
    ingest(store, push("v1", "b1", added=[pattern("a"), pattern("b")]))
    store.apply_pending(worker_id="w", limit=10, now=100.0)
    ingest(store, push("v1", "b2", added=[pattern("c")], removed=["b"]))
    store.apply_pending(worker_id="w", limit=10, now=200.0)
    assert store.prune_live(updated_before=150.0) == 1  # a (b was removed at 200)
    assert set(_live(store)) == {"v1/c"}
    assert store.prune_live(updated_before=150.0) == 0
    assert store.prune_live(updated_before=250.0) == 1  # c; b's removal marker is not counted
    assert store.stats().live_patterns == 0


def test_prune_live_quality_drops_weak_patterns_only(store: Storage) -> None:
    viewer(store, "v1")
    quitting = Pattern(id="q", task="behaviour", cells=(2,), success_rate=0.1, support=5)
    ingest(
        store,
        push(
            "v1",
            "b1",
            added=[pattern("weak", success=0.6), pattern("good", success=0.9), quitting],
            removed=["gone"],
        ),
    )
    store.apply_pending(worker_id="w", limit=10, now=100.0)
    # A behaviour pattern's quality is 1 - success (0.9) unless its rate reads as abandonment.
    assert store.prune_live_quality(min_quality=0.7) == 1  # weak
    assert set(_live(store)) == {"v1/good", "v1/q"}
    assert store.prune_live_quality(min_quality=0.7, abandonment=True) == 1  # q: 0.1
    assert set(_live(store)) == {"v1/good"}
    assert store.prune_live_quality(min_quality=0.95) == 1
    assert store.stats().live_patterns == 0


def test_prune_batches_forgets_idempotency_records(store: Storage) -> None:
    viewer(store, "v1")
    p = push("v1", "b1", added=[pattern("a")])
    ingest(store, p, now=100.0)
    ingest(store, push("v1", "b2", added=[pattern("b")]), now=300.0)
    assert store.prune_batches(created_before=200.0) == 1
    ingest(store, p, now=400.0)  # treated as new once its record is gone
    assert store.stats().pending_contributions == 3


def test_a_failing_push_does_not_take_concurrent_pushes_down(store: Storage) -> None:
    """Writes from many threads may share one transaction (SQLite group commit): a push
    that fails must be undone alone, and every other push must still be stored."""
    for v in range(6):
        viewer(store, f"v{v}")
        ingest(store, push(f"v{v}", "taken", added=[pattern("t")]))
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def run(v: int) -> None:
        barrier.wait()
        for b in range(8):
            if b % 2:  # reuse a batch id with another payload
                try:
                    ingest(store, push(f"v{v}", "taken", added=[pattern(f"x{b}")]))
                except ConflictError:
                    outcomes.append("conflict")
            else:
                ingest(store, push(f"v{v}", f"b{b}", added=[pattern(f"p{b}"), pattern(f"q{b}")]))
                outcomes.append("ok")

    threads = [threading.Thread(target=run, args=(v,)) for v in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 24 + ["ok"] * 24
    assert store.stats().pending_contributions == 6 + 24 * 2
