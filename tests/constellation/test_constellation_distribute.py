"""Pure decisions: fitting a pull to its byte budget, pacing, reviewing a push."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from _databases import fresh_database
from omega.clock import ManualClock
from omega.constellation.distribute import Pacer, fit_pull
from omega.constellation.events import EventBroker, ReleaseWatcher
from omega.constellation.exchange import Exchange, ExchangeLimits
from omega.constellation.ingest import CodebookCache, framed_push_digest, push_digest, review_push
from omega.constellation.metrics import Metrics
from omega.errors import ConflictError
from omega.protocol import codec
from omega.protocol.messages import (
    ConsolidatedPattern,
    Pattern,
    PullRequest,
    PushAck,
    PushRequest,
    Trend,
)
from omega.storage import Storage, open_storage
from omega.storage.base import Codebook, ReleaseDelta, ViewerRecord


def _released(i: int, version: int) -> ConsolidatedPattern:
    return ConsolidatedPattern(
        id=f"r{i}",
        task="preference",
        cells=(i,),
        success_rate=0.8,
        support=10 + i,
        viewers=3 + i,
        weight=1.0 / (1 + i),
        version=version,
    )


def _size(response: object) -> int:
    return len(codec.encode(response))  # type: ignore[arg-type]


def test_fit_pull_keeps_whole_versions_and_lowers_the_cursor() -> None:
    patterns = [_released(i, version=1 + i // 20) for i in range(60)]  # versions 1, 2, 3
    delta = ReleaseDelta(version=3, patterns=patterns, trends=[Trend(cell=1, score=2.0)])
    whole = _size(
        fit_pull(delta, since_version=0, max_bytes=1 << 20, fetched_limit=4096, size_of=_size)
    )
    for budget in (whole // 3, whole // 2, whole - 1):
        fitted = fit_pull(
            delta, since_version=0, max_bytes=budget, fetched_limit=4096, size_of=_size
        )
        assert _size(fitted) <= budget
        assert fitted.more
        sent = len(fitted.patterns)
        complete = all(p.version > fitted.version for p in patterns[sent:])
        # Every version up to the cursor was sent whole, unless the first version alone is
        # over the budget: then its top share went and the cursor moves past it.
        assert complete or (fitted.version == 1 and sent < 20)
    two_versions = fit_pull(
        ReleaseDelta(version=2, patterns=patterns[:40], trends=delta.trends),
        since_version=0,
        max_bytes=1 << 20,
        fetched_limit=4096,
        size_of=_size,
    )
    fitted = fit_pull(
        delta, since_version=0, max_bytes=_size(two_versions), fetched_limit=4096, size_of=_size
    )
    assert fitted.version == 2
    assert len(fitted.patterns) == 40
    assert fitted.more
    full = fit_pull(delta, since_version=0, max_bytes=whole, fetched_limit=4096, size_of=_size)
    assert full.version == 3
    assert not full.more
    assert len(full.patterns) == 60


def test_fit_pull_moves_past_a_version_larger_than_the_budget() -> None:
    patterns = [_released(i, version=5) for i in range(80)]
    delta = ReleaseDelta(version=5, patterns=patterns)
    fitted = fit_pull(delta, since_version=4, max_bytes=700, fetched_limit=4096, size_of=_size)
    assert fitted.version == 5  # progress, with the top-weight share of version 5
    assert 0 < len(fitted.patterns) < 80
    assert fitted.patterns == patterns[: len(fitted.patterns)]


def test_fit_pull_with_nothing_new() -> None:
    fitted = fit_pull(
        ReleaseDelta(version=7), since_version=7, max_bytes=1024, fetched_limit=10, size_of=_size
    )
    assert fitted.version == 7
    assert fitted.patterns == []
    assert not fitted.more


def test_pacer_jitters_and_backs_off_under_load() -> None:
    clock = ManualClock()
    pacer = Pacer(
        interval=100.0, jitter=0.1, target_per_second=1.0, clock=clock, rng=random.Random(1)
    )
    calm = [pacer.next_after(more=False) for _ in range(5)]
    assert all(90.0 <= v <= 110.0 for v in calm)
    assert len(set(calm)) > 1
    for _ in range(200):  # 200 syncs in the same instant: 20/s over a 10 s window
        pacer.next_after(more=False)
    assert pacer.next_after(more=False) > 1000.0
    assert pacer.next_after(more=True) < 3.0  # paging: come straight back
    clock.advance(60)
    assert pacer.next_after(more=False) <= 110.0


def test_review_push_checks_codebook_and_cells() -> None:
    codebook = Codebook(codebook_id="cb1", dim=2, centroids_f16=bytes(16), k=4)

    def pattern(pid: str, cells: tuple[int, ...]) -> Pattern:
        return Pattern(id=pid, task="preference", cells=cells, success_rate=0.9, support=5)

    push = PushRequest(
        viewer_id="v",
        batch_id="b",
        codebook_id="cb1",
        added=[pattern("ok", (1,)), pattern("far", (9,))],
        removed=["gone"],
    )
    ack = review_push(push, codebook, server_version=3)
    assert ack.accepted == ["ok", "gone"]
    assert [r.pattern_id for r in ack.rejected] == ["far"]
    assert ack.server_version == 3

    stale = review_push(
        PushRequest(viewer_id="v", batch_id="b", codebook_id="old", added=[pattern("ok", (1,))]),
        codebook,
        server_version=3,
    )
    assert stale.accepted == []
    assert "old" in stale.rejected[0].reason
    none_yet = review_push(push, None, server_version=0)
    assert {r.pattern_id for r in none_yet.rejected} == {"ok", "far"}


def test_a_rejection_naming_two_long_codebook_ids_can_still_be_sent() -> None:
    """Codebook ids may be 128 characters; a reason holds 256: the ack must still encode."""
    codebook = Codebook(codebook_id="n" * 128, dim=2, centroids_f16=bytes(16), k=4)
    pattern = Pattern(id="p", task="preference", cells=(1,), success_rate=0.9, support=5)
    push = PushRequest(viewer_id="v", batch_id="b", codebook_id="o" * 128, added=[pattern])
    ack = review_push(push, codebook, server_version=3)
    assert codec.decode(codec.encode(ack), expect=PushAck) == ack
    assert "o" * 47 + "…" in ack.rejected[0].reason and "n" * 47 + "…" in ack.rejected[0].reason


def test_push_digest_is_stable_and_payload_sensitive() -> None:
    a = PushRequest(viewer_id="v", batch_id="b", codebook_id="c", removed=["x"])
    b = PushRequest(viewer_id="v", batch_id="b", codebook_id="c", removed=["y"])
    assert push_digest(a) == push_digest(
        codec.decode_json(codec.encode_json(a), expect=PushRequest)
    )
    assert push_digest(a) != push_digest(b)


def _exchange(storage: Storage) -> Exchange:
    clock = ManualClock(10.0)
    return Exchange(
        storage,
        CodebookCache(storage, clock=clock),
        limits=ExchangeLimits(max_patterns_per_batch=100, min_pull_bytes=512, max_pull_bytes=5120),
        clock=clock,
        metrics=Metrics(),
    )


@pytest.mark.parametrize("awaited", [False, True], ids=["push", "push_async"])
def test_a_batch_stored_under_the_old_framed_digest_is_still_recognised(
    tmp_path: Path, awaited: bool
) -> None:
    """Servers before 2026-12 stored the digest of the compressed frame: a device retrying
    such a batch after the upgrade gets its stored ack, and another payload still 422s.
    Both shells (the worker-thread one and the one awaited on the event loop) do so."""
    storage = open_storage(str(tmp_path / "c.db"))
    try:
        storage.create_viewer(ViewerRecord("v", "eu", "tv", created_at=1.0))
        exchange = _exchange(storage)

        def push_to(request: PushRequest) -> PushAck:
            if awaited:
                return asyncio.run(exchange.push_async("v", request, server_version=9))
            return exchange.push("v", request, server_version=9)

        push = PushRequest(viewer_id="v", batch_id="b", codebook_id="c", removed=["x"])
        old_ack = PushAck(batch_id="b", server_version=7)
        assert framed_push_digest(push) != push_digest(push)
        storage.ingest(push, digest=framed_push_digest(push), region="eu", ack=old_ack, now=1.0)
        assert push_to(push) == old_ack
        other = PushRequest(viewer_id="v", batch_id="b", codebook_id="c", removed=["y"])
        with pytest.raises(ConflictError):
            push_to(other)
        assert storage.stats().pending_contributions == 1
    finally:
        storage.close()


def test_pulls_answered_from_the_cache_never_miss_a_new_release(tmp_path: Path) -> None:
    """Devices at one version share one fitted answer, until the next release."""
    storage = open_storage(str(tmp_path / "c.db"))
    try:
        exchange = _exchange(storage)
        pull = PullRequest(viewer_id="v", since_version=0)
        assert exchange.pull(pull).version == 0
        first = ConsolidatedPattern(
            id="p1",
            task="preference",
            cells=(1,),
            success_rate=0.8,
            support=9,
            viewers=3,
            weight=1.0,
            version=0,
        )
        storage.commit_release(base_version=0, upserted=[first], removed=[], trends=[], now=1.0)
        fresh = exchange.pull(pull)
        assert (fresh.version, [p.id for p in fresh.patterns]) == (1, ["p1"])
        assert exchange.pull(PullRequest(viewer_id="w", since_version=0)) is fresh  # shared
        storage.commit_release(base_version=1, upserted=[], removed=["p1"], trends=[], now=2.0)
        after = exchange.pull(pull)
        assert (after.version, after.patterns) == (2, [])
    finally:
        storage.close()


@pytest.mark.postgres
def test_a_release_version_that_goes_back_forgets_the_fitted_pulls(postgres_url: str) -> None:
    """On PostgreSQL a pull is keyed on the broker's version (no query per pull). A store
    restored or replaced numbers its releases again: an answer cached under a number
    reused that way is dropped, not served as that release."""
    with fresh_database(postgres_url) as url:
        storage = open_storage(url)
        try:
            clock = ManualClock(10.0)
            version = [3]
            exchange = Exchange(
                storage,
                CodebookCache(storage, clock=clock),
                limits=ExchangeLimits(
                    max_patterns_per_batch=100, min_pull_bytes=512, max_pull_bytes=5120
                ),
                clock=clock,
                metrics=Metrics(),
                release_version=lambda: version[0],
            )
            pull = PullRequest(viewer_id="v", since_version=0)

            async def scenario() -> None:
                await storage.open_async()
                try:
                    first = await exchange.pull_async(pull)
                    assert await exchange.pull_async(pull) is first  # cached under v3
                    version[0] = 2  # the store was restored to an older state
                    await exchange.pull_async(pull)
                    version[0] = 3  # …and released a v3 of its own
                    assert await exchange.pull_async(pull) is not first
                finally:
                    await storage.close_async()

            asyncio.run(scenario())
        finally:
            storage.close()


def test_the_release_watcher_follows_a_store_whose_version_went_back(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "c.db"))
    try:
        broker = EventBroker()
        broker.version = 7  # what this server saw before its store was replaced
        seen: list[int] = []
        watcher = ReleaseWatcher(storage, broker, interval=60.0, on_version=seen.append)
        assert asyncio.run(watcher.check()) == 0
        assert broker.version == 0 and seen == [0]
    finally:
        storage.close()
