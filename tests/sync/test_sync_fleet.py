"""Learn → sync → federation round → another viewer pulls it, over real HTTP (uvicorn on
loopback), against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

from _sync_world import Server, open_brain, watch

from omega.brain import Brain
from omega.clock import ManualClock
from omega.sync import HttpTransport, SyncClient, SyncResult, run_sync


async def _sync(brain: Brain, server: Server, *, codebook: bool = True) -> SyncResult:
    async with HttpTransport(server.base_url) as transport:
        client = SyncClient(brain, transport)
        if codebook:
            await client.fetch_codebook()
        return await client.sync()


def test_patterns_learned_on_three_tvs_reach_a_fourth(any_server: Server, tmp_path: Path) -> None:
    clock = ManualClock()
    results = []
    for n in range(3):
        tv = open_brain(tmp_path / f"tv{n}", ManualClock(clock.now()))
        watch(tv, tv.clock, [0, 1, 2])  # type: ignore[arg-type]
        results.append(asyncio.run(_sync(tv, any_server)))
        assert tv.sync.outbox_size() == 0
        assert tv.sync.inflight() is None
        tv.close()
    for result in results:
        assert result.pushed > 0
        assert result.accepted == result.pushed
        assert result.rejected == 0
        assert 0 < result.push_bytes <= 1100  # a typical delta is about 1 KB
    assert any_server.stats()["pending_contributions"] == sum(r.pushed for r in results)

    round_ = any_server.run_round()
    assert round_["version"] >= 1

    fourth = open_brain(tmp_path / "tv3", clock)
    assert fourth.learner.knowledge.collective_patterns == 0
    pulled = run_sync(fourth, any_server.base_url)
    assert pulled.pulled > 0
    assert pulled.version == round_["version"]
    assert fourth.learner.knowledge.collective_patterns > 0
    assert fourth.stats()["release_version"] == round_["version"]
    assert pulled.next_sync_after > 0
    # A second sync has nothing new either way and keeps the cursor.
    again = run_sync(fourth, any_server.base_url)
    assert (again.pushed, again.pulled, again.version) == (0, 0, round_["version"])
    fourth.close()

    reopened = open_brain(tmp_path / "tv3", clock)  # the collective tier survives a restart
    assert reopened.learner.knowledge.collective_patterns == pulled.pulled
    reopened.close()


def test_a_big_outbox_drains_in_several_batches(server: Server, tmp_path: Path) -> None:
    clock = ManualClock()
    tv = open_brain(tmp_path / "tv", clock)
    asyncio.run(_sync(tv, server))  # adopt the codebook, register
    watch(tv, clock, list(range(8)), rounds=4)
    tv.flush()
    waiting = tv.sync.outbox_size()
    before = server.stats()["pending_contributions"]

    async def drain() -> list[SyncResult]:
        async with HttpTransport(server.base_url) as transport:
            client = SyncClient(tv, transport, max_push_patterns=8)
            results = [await client.sync()]
            while results[-1].outbox_remaining:
                results.append(await client.sync())
            return results

    results = asyncio.run(drain())
    assert len(results) == -(-waiting // 8)
    assert all(r.accepted == r.pushed and r.pushed <= 8 for r in results)
    assert len({r.batch_id for r in results}) == len(results)
    assert sum(r.pushed for r in results) == waiting
    assert server.stats()["pending_contributions"] - before == waiting
    assert tv.sync.outbox_size() == 0
    tv.close()
