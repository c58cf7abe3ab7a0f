"""Connection resets on the wire: a real TV brain syncs with a real constellation (uvicorn
on loopback) through :class:`omega.bench.faults.ResetProxy`, which tears one exchange
with a TCP reset at a chosen byte offset — of the push request or its answer, of a later
pull page's request or its answer. The client's retry completes the sync, the server
queues each pattern version once, and the device applies each pull page once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
from _sync_world import (
    Server,
    copy_device,
    crowd_release,
    device_outbox,
    device_template,
    pending_upserts,
    start_server,
)

from omega.bench.faults import Direction, Reset, ResetProxy
from omega.brain import Brain
from omega.sync import HttpTransport, RetryPolicy, SyncClient, SyncResult

Exchange = Literal["push", "page"]  # the first round trip (push + page 1), or page 2's
PAGE = 350  # bytes: one release version per pull page (three pages in all)
EXCHANGES: list[Exchange] = ["push", "page"]
DIRECTIONS: list[Direction] = ["up", "down"]
#: Where the cut falls: before any byte, inside the request or status line and headers,
#: in the middle, and 16 bytes before the end (sizes vary by a few bytes per device).
OFFSETS = ("none", "headers", "middle", "end")


@dataclass
class World:
    server: Server
    template: Path
    version: int
    sizes: dict[tuple[Exchange, Direction], int]
    pages: int
    held: set[str]  # the released patterns a clean sync leaves on the device
    tmp: Path
    devices: int = 0

    def device(self) -> tuple[Brain, Path]:
        self.devices += 1
        directory = self.tmp / f"tv{self.devices}"
        brain, _ = copy_device(self.template, directory)
        return brain, directory

    def offset(self, exchange: Exchange, direction: Direction, where: str) -> int:
        size = self.sizes[(exchange, direction)]
        return {"none": 0, "headers": 40, "middle": size // 2, "end": size - 16}[where]


@dataclass
class Run:
    """What one sync through the proxy did, step by step."""

    result: SyncResult | None = None
    resets_at_reply: int = -1
    versions: list[int] = field(default_factory=list)  # the cursor after each page applied
    resets_per_page: list[int] = field(default_factory=list)
    moved: dict[str, dict[str, int]] = field(default_factory=dict)
    waits: list[float] = field(default_factory=list)


async def _sync_through(
    proxy: ResetProxy,
    brain: Brain,
    *,
    cuts: list[tuple[Exchange, Direction, int]],
    attempts: int = 3,
) -> Run:
    """Register, then sync once, arming ``cuts`` (exchange, direction, byte offset) just
    before the exchange each is for."""
    run = Run()

    async def record_wait(seconds: float) -> None:
        run.waits.append(seconds)

    def step(name: str) -> None:
        if name == "reply-received":
            run.resets_at_reply = len(proxy.resets)
            run.moved["reply"] = dict(proxy.moved)
        elif name == "page-applied":
            run.versions.append(brain.sync.release_version())
            run.resets_per_page.append(len(proxy.resets))
            run.moved[f"page{len(run.versions)}"] = dict(proxy.moved)
            if len(run.versions) == 1:
                _arm(proxy, cuts, "page")  # the next page's round trip

    async with HttpTransport(proxy.url) as transport:
        client = SyncClient(
            brain,
            transport,
            max_pull_bytes=PAGE,
            on_step=step,
            retry=RetryPolicy(attempts=attempts, sleep=record_wait),
        )
        await client.credentials()  # register first: the cut is for the sync itself
        run.moved["start"] = dict(proxy.moved)
        _arm(proxy, cuts, "push")
        run.result = await client.sync()
    return run


def _arm(proxy: ResetProxy, cuts: list[tuple[Exchange, Direction, int]], now: Exchange) -> None:
    for exchange, direction, at in cuts:
        if exchange == now:
            proxy.cut(direction, after=at)


def _proxied(server: Server) -> ResetProxy:
    port = int(server.base_url.rsplit(":", 1)[1])
    return ResetProxy("127.0.0.1", port)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A server with three small releases, a TV template with patterns to push, and the
    byte sizes of each exchange, measured on a clean sync through the proxy."""
    tmp = tmp_path_factory.mktemp("resets")
    server = start_server(tmp / "constellation", OMEGA_MIN_PULL_BYTES="128")
    try:
        server.publish_codebook()
        version = crowd_release(server, [[0, 1, 2], [3, 4, 5], [6, 7]])
        template = device_template(server, tmp / "template", [5, 6, 7])
        world = World(server, template, version, {}, 0, set(), tmp)
        brain, _ = world.device()

        async def measure() -> Run:
            async with _proxied(server) as proxy:
                return await _sync_through(proxy, brain, cuts=[])

        clean = asyncio.run(measure())
        world.held = {p.id for p in brain.sync.collective()[0]}
        brain.close()
        assert clean.result is not None and clean.result.pages == 3
        start, reply, page1, page2 = (clean.moved[k] for k in ("start", "reply", "page1", "page2"))
        for direction in DIRECTIONS:
            world.sizes[("push", direction)] = reply[direction] - start[direction]
            world.sizes[("page", direction)] = page2[direction] - page1[direction]
        world.pages = clean.result.pages
        yield world
    finally:
        server.stop()


@pytest.mark.parametrize("where", OFFSETS)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("exchange", EXCHANGES)
def test_a_reset_mid_exchange_is_retried_and_applied_once(
    world: World, exchange: Exchange, direction: Direction, where: str
) -> None:
    brain, _ = world.device()
    queued = device_outbox(brain)
    at = world.offset(exchange, direction, where)

    async def scenario() -> tuple[Run, list[Reset]]:
        async with _proxied(world.server) as proxy:
            run = await _sync_through(proxy, brain, cuts=[(exchange, direction, at)])
            return run, list(proxy.resets)

    run, resets = asyncio.run(scenario())
    result = run.result
    assert result is not None

    # One reset, made by the cut, inside the exchange it aimed at.
    assert [r.direction for r in resets] == [direction]
    if exchange == "push":
        assert run.resets_at_reply == 1  # before the first answer was read
    else:
        assert run.resets_per_page[:2] == [0, 1]  # after page 1, before page 2 was applied
    assert len(run.waits) == 1  # one retry, after the one reset

    # The server queued each pattern version of the push exactly once.
    assert not result.resent and result.accepted == result.pushed == len(queued)
    upserts = pending_upserts(world.server.data_dir / "constellation.db", result.viewer_id)
    assert {pid for pid, _ in upserts} == queued
    assert set(upserts.values()) == {1}
    assert brain.sync.outbox_size() == 0 and brain.sync.inflight() is None

    # The device applied each pull page once, in order, up to the server's release.
    assert result.pages == world.pages == len(run.versions)
    assert run.versions == sorted(set(run.versions))
    assert run.versions[-1] == world.version == brain.sync.release_version()
    held = {p.id for p in brain.sync.collective()[0]}
    assert held == world.held  # what a clean sync holds (pages cut to a top share)
    brain.close()


def test_resets_in_a_row_are_each_retried_and_the_push_applies_once(world: World) -> None:
    """Three answers to the same push torn in a row (each at another offset): the fourth
    try gets through, and the server still holds each pattern version once."""
    brain, _ = world.device()
    queued = device_outbox(brain)
    size = world.sizes[("push", "down")]

    async def scenario() -> tuple[Run, int]:
        async with _proxied(world.server) as proxy:
            cuts: list[tuple[Exchange, Direction, int]] = [
                ("push", "down", at) for at in (0, size // 2, size - 16)
            ]
            run = await _sync_through(proxy, brain, cuts=cuts, attempts=4)
            return run, len(proxy.resets)

    run, resets = asyncio.run(scenario())
    assert resets == 3 and len(run.waits) == 3 and run.resets_at_reply == 3
    result = run.result
    assert result is not None and not result.resent
    assert result.accepted == result.pushed == len(queued)
    upserts = pending_upserts(world.server.data_dir / "constellation.db", result.viewer_id)
    assert {pid for pid, _ in upserts} == queued and set(upserts.values()) == {1}
    brain.close()
