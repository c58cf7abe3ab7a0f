"""Co-watch pairs a failed piece or a crash left unconfirmed go out at a later sync:
each pair reaches the helper exactly once, and the budget and both servers' bounds are
charged once (a real helper over HTTP that stops, refuses, and comes back at its
address; the constellation's app in process; TV brains reopened from disk)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _sync_world import inprocess_settings, open_brain, publish_codebook_via, trust_via
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from omega.clock import ManualClock
from omega.constellation import create_app
from omega.errors import InputError
from omega.helper import CowatchConfig, CowatchDesk, HelperConfig, HelperService, HelperThread
from omega.helper.service import SECRET_FILE
from omega.protocol import oprf
from omega.protocol.attestation import Manufacturer
from omega.protocol.cowatch import SealedReport, make_report, open_report, pair_input
from omega.sync import AsgiTransport, Contributor, HttpTransport, Response, SyncClient, SyncResult
from omega.sync._cowatch_queue import Queued, load_queue, queue_cursor
from omega.sync.cowatch import COWATCH_QUEUE
from omega.sync.cursors import CatalogOrder
from omega.sync.reports import REPORT_SPENT
from omega.sync.retry import RetryPolicy

WEEK = 7 * 86_400.0
PER_EPOCH = 128  # both servers' default bound, and the TVs'
#: Pairs of one contribution: three report pieces (22 reports fit one request).
N = 50


def _pairs(start: int, n: int) -> list[tuple[int, int]]:
    every = [(a, b) for a in range(40) for b in range(40) if a != b]
    return every[start : start + n]


@dataclass
class Pairs:
    """What a brain promises the sync: each pair handed over once, the same ones again
    when an epoch is asked twice."""

    todo: list[tuple[int, int]]
    handed: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    def pairs_to_contribute(self, epoch: int, limit: int) -> list[tuple[int, int]]:
        if epoch not in self.handed:
            self.handed[epoch], self.todo = self.todo[:limit], self.todo[limit:]
        return self.handed[epoch]

    def all(self) -> list[tuple[int, int]]:
        return [pair for handed in self.handed.values() for pair in handed]


class PowerCut(BaseException):
    """The TV loses power: nothing after it runs (not an error the sync could catch)."""


@dataclass
class Watched:
    """The TV's transport to the helper: ``then(path, n)`` runs once the helper has
    received the ``n``-th request to ``path`` (what happens to the helper, or the TV,
    at that moment); ``reports`` counts report requests sent."""

    inner: Any
    then: Callable[[str, int], None] = lambda path, n: None
    sent: dict[str, int] = field(default_factory=dict)

    async def request(self, method: str, path: str, **kwargs: Any) -> Response:
        answer = await self.inner.request(method, path, **kwargs)
        self.sent[path] = self.sent.get(path, 0) + 1
        self.then(path, self.sent[path])
        return answer

    async def aclose(self) -> None:
        return None


@dataclass
class Helper:
    """The helper at a fixed address, stopped and started again over the same data."""

    tmp: Path
    clock: ManualClock
    maker: Manufacturer
    service: HelperService
    thread: HelperThread | None = None
    port: int = 0
    epoch_s: float = WEEK

    def start(self, *, trusting: bool = True) -> None:
        keys = {("acme", "k1"): self.maker.key.public_key()} if trusting else {}
        # the defaults: 128 a week
        config = CowatchConfig(manufacturer_keys=keys, epoch_s=self.epoch_s)
        desk = CowatchDesk(self.tmp / "helper", self.service.secret, config, clock=self.clock)
        self.thread = HelperThread(self.service, cowatch=desk, port=self.port).start()
        self.port = int(self.thread.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()
            self.thread = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def queue(self) -> list[SealedReport]:
        with sqlite3.connect(self.tmp / "helper" / "helper-cowatch.sqlite3") as db:
            rows = db.execute("SELECT tag, sealed FROM cw_queue").fetchall()
        return [SealedReport(tag=bytes(t), sealed=bytes(s)) for t, s in rows]

    def used(self) -> dict[str, int]:
        with sqlite3.connect(self.tmp / "helper" / "helper-cowatch.sqlite3") as db:
            epoch = int(self.clock.now() // WEEK)
            return dict(
                db.execute("SELECT kind, used FROM cw_usage WHERE epoch = ?", (epoch,)).fetchall()
            )


@dataclass
class World:
    tmp: Path
    clock: ManualClock
    maker: Manufacturer
    helper: Helper
    app: AsgiTransport | None = None

    @contextlib.asynccontextmanager
    async def constellation(
        self, epoch_s: float = WEEK, *, again: bool = False
    ) -> AsyncIterator[None]:
        """The constellation's app, serving for the scenario (``again``: restarted over
        its data, the codebook published and the maker trusted already)."""
        settings = inprocess_settings(
            self.tmp / "server",
            helper_url=self.helper.url,
            helper_secret_file=self.tmp / "helper" / SECRET_FILE,
            allow_unattested=False,
            cowatch_epoch_s=epoch_s,
        )
        async with AsgiTransport(create_app(settings, clock=self.clock)) as app:
            if not again:
                await publish_codebook_via(app)
                await trust_via(app, self.maker)
            self.app = app
            yield

    def leader(self) -> sqlite3.Connection:
        return sqlite3.connect(self.tmp / "server" / "constellation.db")

    def leader_used(self) -> int:
        epoch = int(self.clock.now() // WEEK)
        with self.leader() as db:
            row = db.execute("SELECT used FROM cowatch_usage WHERE epoch = ?", (epoch,)).fetchone()
        return int(row[0]) if row else 0

    def tags(self, pairs: list[tuple[int, int]]) -> list[bytes]:
        """The tags the two servers' keys give ``pairs`` (what only both together know)."""
        helper_key = (self.tmp / "helper" / "cowatch-oprf.key").read_bytes()
        with self.leader() as db:
            leader_key = bytes(db.execute("SELECT oprf_key FROM cowatch_keys").fetchone()[0])
        return [
            make_report(oprf.direct((helper_key, leader_key), pair_input(a, b)), a, b, k=3).tag
            for a, b in pairs
        ]

    async def sync(
        self, pairs: Pairs, then: Callable[[str, int], None] = lambda path, n: None
    ) -> tuple[SyncResult, Watched]:
        """One sync of the TV, its brain opened from disk and closed after."""

        async def no_sleep(_: float) -> None:
            return None

        retry = RetryPolicy(sleep=no_sleep)
        tv = open_brain(self.tmp / "tv", self.clock)
        identity = self.maker.device("SN-1", clock=self.clock)
        try:
            async with HttpTransport(self.helper.url) as helper:
                watched = Watched(helper, then)
                contributor = Contributor(helper=watched, identity=identity, retry=retry)
                assert self.app is not None
                client = SyncClient(
                    tv,
                    self.app,
                    attestation=identity,
                    cowatch=contributor,
                    cowatch_pairs=pairs,
                    retry=retry,
                )
                await client.fetch_codebook()
                return await client.sync(), watched
        finally:
            tv.close()

    def tv_cursor(self, name: str) -> str:
        tv = open_brain(self.tmp / "tv", self.clock)
        try:
            return tv.sync.cursor(name)
        finally:
            tv.close()

    def set_tv_cursor(self, name: str, value: str) -> None:
        tv = open_brain(self.tmp / "tv", self.clock)
        try:
            tv.sync.set_cursors({name: value})
        finally:
            tv.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = ManualClock()
    maker = Manufacturer.generate("acme", "k1")
    service = HelperService.open(tmp_path / "helper", HelperConfig(min_batch=10, noise_epsilon=0))
    helper = Helper(tmp_path, clock, maker, service)
    helper.start()
    try:
        yield World(tmp_path, clock, maker, helper)
    finally:
        helper.stop()


def _exactly_once(world: World, pairs: list[tuple[int, int]]) -> None:
    """Every pair's report reached the helper once; the TV paid for each once."""
    assert sorted(r.tag for r in world.helper.queue()) == sorted(world.tags(pairs))
    assert world.tv_cursor(COWATCH_QUEUE) == ""
    assert len(world.tv_cursor(REPORT_SPENT).split()) == len(pairs)


@pytest.mark.parametrize("failure", ["stopped", "stops-after-a-piece", "refusing"])
def test_a_failed_contribution_goes_out_at_the_next_sync_exactly_once(
    world: World, failure: str
) -> None:
    pairs = Pairs(_pairs(0, N))
    if failure == "stopped":
        world.helper.stop()
    elif failure == "refusing":  # does not trust the TV's maker yet: 401 on every piece
        world.helper.stop()
        world.helper.start(trusting=False)

    def stop_after_a_piece(path: str, n: int) -> None:
        if failure == "stops-after-a-piece" and path.endswith("/reports") and n == 1:
            world.helper.stop()

    async def scenario() -> None:
        async with world.constellation():
            first, _ = await world.sync(pairs, stop_after_a_piece)
            assert first.cowatch_error is not None
            reached = len(world.helper.queue())  # the first piece, when it went
            assert reached == (22 if failure == "stops-after-a-piece" else 0)
            assert world.tv_cursor(COWATCH_QUEUE) != ""  # the rest is queued

            world.helper.stop()
            world.helper.start()  # back, trusting the maker, at the same address
            world.clock.advance(3600)  # the same epoch
            second, _ = await world.sync(pairs)
            assert second.cowatch_error is None
            assert second.cowatch_sent == N - reached
            assert len(pairs.handed) == 1  # asked once: the queue went, nothing new
            _exactly_once(world, pairs.all())
            # Re-sent in the epoch they were first charged in: charged nothing more.
            assert world.helper.used() == {"points": N, "reports": N}
            assert world.leader_used() == N

            third, watched = await world.sync(pairs)  # nothing left: nothing sent again
            assert third.cowatch_sent == 0 and not watched.sent
            _exactly_once(world, pairs.all())

    asyncio.run(scenario())


@pytest.mark.parametrize("at", ["/helper/v1/cowatch/oprf", "/helper/v1/cowatch/reports"])
def test_a_crash_after_recording_never_repeats_a_pair(world: World, at: str) -> None:
    """The TV dies once its first request to ``at`` reached the helper (the first report
    piece was queued there; its answer never came back): the disk holds what the last
    commit before it did, the record of the epoch with its pairs queued."""
    pairs = Pairs(_pairs(0, N))
    recorded: list[str] = []

    def crash(path: str, n: int) -> None:
        if path == at:
            recorded.append(world.tv_cursor(COWATCH_QUEUE))  # what the record committed
            raise PowerCut

    async def scenario() -> None:
        async with world.constellation():
            with pytest.raises(PowerCut):
                await world.sync(pairs, crash)
            world.set_tv_cursor(COWATCH_QUEUE, recorded[0])  # nothing after it survived
            assert len(world.helper.queue()) == (22 if at.endswith("/reports") else 0)

            world.clock.advance(3600)
            again, _ = await world.sync(pairs)
            assert again.cowatch_error is None and again.cowatch_sent == N
            assert len(pairs.handed) == 1
            _exactly_once(world, pairs.all())
            # The same blinded points in the same epoch: both servers charged them once.
            assert world.helper.used() == {"points": N, "reports": N}
            assert world.leader_used() == N

    asyncio.run(scenario())


def test_pairs_queued_into_a_new_epoch_go_first_and_take_its_slots(world: World) -> None:
    """Queued in one epoch, sent in the next: charged there again by both servers (a
    point is free again only within its epoch), so the new pairs fill only the rest of
    that epoch's bound, and nothing is refused."""
    pairs = Pairs(_pairs(0, N))

    async def scenario() -> None:
        async with world.constellation():
            world.helper.stop()
            first, _ = await world.sync(pairs)
            assert first.cowatch_error is not None and first.cowatch_sent == 0

            world.helper.start()
            world.clock.advance(WEEK)
            pairs.todo = _pairs(N, 300)  # watched more since
            second, _ = await world.sync(pairs)
            assert second.cowatch_error is None
            assert second.cowatch_sent == PER_EPOCH  # the 50 queued, then 78 new
            assert [len(p) for p in pairs.handed.values()] == [N, PER_EPOCH - N]
            _exactly_once(world, pairs.all())
            assert world.helper.used() == {"points": PER_EPOCH, "reports": PER_EPOCH}
            assert world.leader_used() == PER_EPOCH

    asyncio.run(scenario())


def test_reports_sealed_to_a_key_the_constellation_replaced_are_sealed_again(
    world: World,
) -> None:
    pairs = Pairs(_pairs(0, N))

    def stop_after_a_piece(path: str, n: int) -> None:
        if path.endswith("/reports") and n == 1:
            world.helper.stop()

    async def scenario() -> None:
        async with world.constellation():
            await world.sync(pairs, stop_after_a_piece)  # 28 reports sealed, queued
            new_key = X25519PrivateKey.generate()
            with world.leader() as db:
                db.execute("UPDATE cowatch_keys SET hpke_key = ?", (new_key.private_bytes_raw(),))
            world.helper.start()
            world.clock.advance(3600)
            again, _ = await world.sync(pairs)
            assert again.cowatch_error is None and again.cowatch_sent == N - 22
            _exactly_once(world, pairs.all())
            opened = 0
            for report in world.helper.queue():
                try:
                    open_report(report, new_key)
                    opened += 1
                except InputError:
                    continue
            assert opened == N - 22  # the re-sent ones open under the constellation's key

    asyncio.run(scenario())


def test_a_tv_whose_clock_went_back_never_sends_an_epoch_again(world: World) -> None:
    """What the replays' 5 % surplus of reports was: a TV synced with its clock back in an
    epoch it had contributed in, the brain handed that epoch's pairs again (as it must
    for an epoch asked twice), and the TV paid for them twice — the helper refused them
    as already reported. It now asks only for an epoch after the last it contributed in."""
    pairs = Pairs(_pairs(0, 300))

    async def scenario() -> None:
        async with world.constellation():
            first, _ = await world.sync(pairs)
            world.clock.advance(WEEK)
            second, _ = await world.sync(pairs)
            assert first.cowatch_sent == second.cowatch_sent == PER_EPOCH
            world.clock.set(world.clock.now() - WEEK)  # back into the first epoch
            back, watched = await world.sync(pairs)
            assert back.cowatch_error is None and back.cowatch_sent == 0
            assert not watched.sent and len(pairs.handed) == 2
            _exactly_once(world, pairs.all())

    asyncio.run(scenario())


def test_a_tv_keeps_contributing_when_the_servers_lengthen_their_epochs(world: World) -> None:
    """Day-long epochs, then week-long ones: the week's epoch numbers are smaller than the
    day's the TV last contributed in, which is no clock gone back (it ended long ago)."""
    day = 86_400.0
    pairs = Pairs(_pairs(0, 300))

    async def scenario() -> None:
        world.helper.stop()
        world.helper.epoch_s = day
        world.helper.start()
        async with world.constellation(epoch_s=day):
            daily, _ = await world.sync(pairs)
        world.clock.advance(WEEK)
        world.helper.stop()
        world.helper.epoch_s = WEEK
        world.helper.start()
        async with world.constellation(epoch_s=WEEK, again=True):
            weekly, _ = await world.sync(pairs)
        assert daily.cowatch_sent == weekly.cowatch_sent == PER_EPOCH
        assert weekly.cowatch_error is None

    asyncio.run(scenario())


def test_a_queue_in_another_catalog_order_or_unreadable_is_dropped(tmp_path: Path) -> None:
    """Its positions would name other titles in a new order: dropped, not sent."""
    tv = open_brain(tmp_path / "tv", ManualClock())
    try:
        CatalogOrder.record(tv, ["a", "b", "c"])
        items = [Queued.blind(0, 1), Queued.blind(1, 2)]
        tv.sync.set_cursors({COWATCH_QUEUE: queue_cursor(tv, items, b"key")})
        assert load_queue(tv) == (items, b"key")
        CatalogOrder.record(tv, ["c", "b", "a"])
        assert load_queue(tv) == ([], b"")
        tv.sync.set_cursors({COWATCH_QUEUE: "not a queue"})
        assert load_queue(tv) == ([], b"")
    finally:
        tv.close()
