"""The server SIGKILLed from outside under a fleet: 16 TV brains push and pull through a
real ``omega serve`` process on loopback (SQLite, and PostgreSQL), which the test kills
with SIGKILL, twice, while pushes are in flight — the moment the n-th acknowledgement (n
seeded) reaches its device, where a server that answered before committing would lose
what it acknowledged — and each time starts again on the same data directory, database
and port. The devices retry until their outboxes are empty.

Every batch a device recorded is then on the server exactly once per pattern version —
counted in the server's own storage, per viewer — and every batch a device saw
acknowledged before the kill survived it.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import psycopg
import pytest
from _sync_world import Server, copy_device, device_template, server_env

from _databases import fresh_database
from omega.bench.serving import free_port
from omega.brain import Brain
from omega.clock import ManualClock
from omega.errors import ServerError, TransportError
from omega.protocol import codec
from omega.protocol.messages import Pattern, PushRequest
from omega.sync import HttpTransport, RetryPolicy, SyncClient

DEVICES = 16
ROUNDS = 8  # learn, then sync (retrying through the outages), per device
KILLS = 2  # SIGKILLs (and restarts) of the server while the fleet runs
SEED = 15
ITEMS = 4  # titles per cell in the test catalog

Key = tuple[str, str, int | str]  # (op, pattern id, version for an upsert / batch for a removal)


# -- the server, as an operator runs it ------------------------------------------------------
def _omega_serve(data_dir: Path, port: int, db_url: str | None) -> Server:
    """``omega serve`` in a child process (``start()`` it, and again after a kill)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        *(sys.executable, "-m", "omega.cli", "serve", "--host", "127.0.0.1"),
        *("--port", str(port), "--data-dir", str(data_dir), "--log-level", "warning"),
        *(("--db", db_url) if db_url else ()),
    ]
    return Server(
        command,
        env=server_env(data_dir),
        base_url=f"http://127.0.0.1:{port}",
        log_path=data_dir / "server.log",
        data_dir=data_dir,
        db_url=db_url or f"sqlite:///{data_dir / 'constellation.db'}",
    )


def _stored(db_url: str) -> Counter[tuple[str, Key]]:
    """(viewer, key) of every contribution the server's storage holds, with its count."""
    query = "SELECT viewer_id, batch_id, pattern_id, op, body FROM pending"
    if db_url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute(query).fetchall()
    else:
        with psycopg.connect(db_url) as conn:
            rows = conn.execute(query).fetchall()
    counts: Counter[tuple[str, Key]] = Counter()
    for viewer, batch, pattern_id, op, body in rows:
        if op == "upsert":
            version = msgspec.msgpack.decode(bytes(body), type=Pattern).version
            counts[(viewer, ("upsert", pattern_id, version))] += 1
        else:
            counts[(viewer, ("remove", pattern_id, batch))] += 1
    return counts


def _keys(push: PushRequest) -> list[Key]:
    upserts: list[Key] = [("upsert", p.id, p.version) for p in (*push.added, *push.updated)]
    return upserts + [("remove", pid, push.batch_id) for pid in push.removed]


# -- the fleet -------------------------------------------------------------------------------
@dataclass
class Kill:
    """SIGKILLs the server each time an acknowledged push reaching its device is the
    ``at[n]``-th (or the first after it with a quarter of the fleet's pushes still
    unanswered), and notes what the fleet had in flight and acknowledged then."""

    at: list[int]  # ascending counts of acknowledged replies
    server: Server
    fleet: list[Device] = field(default_factory=list)
    replies: int = 0
    killed: asyncio.Event = field(default_factory=asyncio.Event)  # down, not restarted yet
    in_flight: list[int] = field(default_factory=list)  # unanswered pushes, at each kill
    acked_before: dict[int, set[str]] = field(default_factory=dict)  # per device, any kill

    def reply(self, device: Device) -> None:
        self.replies += 1
        in_flight = sum(d.in_flight for d in self.fleet)
        kills = len(self.in_flight)
        if kills == len(self.at) or self.killed.is_set():
            return
        if self.replies < self.at[kills] or in_flight < DEVICES // 4:
            return
        os.kill(self.server.process.pid, signal.SIGKILL)  # from outside, pushes under way
        self.in_flight.append(in_flight)
        for d in self.fleet:
            self.acked_before.setdefault(d.number, set()).update(d.acked)
        assert device.current is not None
        self.acked_before[device.number].add(device.current)  # it holds the ack
        self.killed.set()

    async def restart_each_time(self) -> None:
        """Wait for each kill, reap the server and start it again on the same data and
        port."""
        for _ in self.at:
            await self.killed.wait()
            assert await asyncio.to_thread(self.server.process.wait, 30) == -signal.SIGKILL
            await asyncio.to_thread(self.server.start)
            self.killed.clear()


@dataclass
class Device:
    """A TV brain and what it recorded: every batch it sent, and those acknowledged."""

    number: int
    brain: Brain
    clock: ManualClock
    kill: Kill
    batches: dict[str, list[Key]] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    current: str | None = None  # the batch of the sync under way
    in_flight: bool = False  # between recording a batch and reading its answer
    syncs: int = 0
    failures: int = 0

    def step(self, name: str) -> None:
        if name == "batch-recorded":
            inflight = self.brain.sync.inflight()
            self.current = None if inflight is None else inflight.batch_id
            if inflight is not None:
                push = codec.decode(inflight.payload, expect=PushRequest)
                self.batches.setdefault(push.batch_id, _keys(push))
                self.in_flight = True
        elif name == "reply-received":
            self.in_flight = False
            if self.current is not None:
                self.kill.reply(self)
        elif name == "acked" and self.current is not None:
            self.acked.add(self.current)

    def learn(self, round_: int) -> None:
        """Watch three titles of one more cell: a pattern gains support or appears."""
        cell = (self.number + round_) % 8
        for n in range(3):
            self.brain.track_view(f"c{cell}i{(round_ + n) % ITEMS}", watch_fraction=0.95)
            self.clock.advance(1800)

    @property
    def viewer(self) -> str:
        return self.brain.sync.cursor("sync.viewer_id", "")


#: Longest a device keeps trying one sync (a restart takes a few seconds): past it the
#: test fails instead of hanging.
SYNC_DEADLINE = 180.0


async def _sync_until_done(device: Device, client: SyncClient) -> None:
    """One sync, tried again (after a short pause) for as long as the server is away."""
    deadline = time.monotonic() + SYNC_DEADLINE
    while True:
        device.in_flight = False
        try:
            await client.sync()
        except (TransportError, ServerError) as exc:
            device.failures += 1
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"tv{device.number} could not sync for {SYNC_DEADLINE:.0f} s "
                    f"(was the server restarted?): {exc}"
                ) from exc
            await asyncio.sleep(0.05)
            continue
        device.syncs += 1
        return


async def _run_device(device: Device, url: str) -> None:
    async def no_wait(_: float) -> None:
        return None

    async with HttpTransport(url, timeout=10) as transport:
        client = SyncClient(
            device.brain,
            transport,
            on_step=device.step,
            retry=RetryPolicy(attempts=2, sleep=no_wait),
        )
        for round_ in range(ROUNDS):
            device.learn(round_)
            await _sync_until_done(device, client)
        while device.brain.sync.outbox_size() or device.brain.sync.inflight():
            await _sync_until_done(device, client)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    with fresh_database(request.getfixturevalue("postgres_url")) as url:
        yield url


def test_a_server_sigkilled_under_a_fleet_loses_and_duplicates_nothing(
    tmp_path: Path, db_url: str | None
) -> None:
    rng = random.Random(SEED)
    server = _omega_serve(tmp_path / "constellation", free_port(), db_url).start()
    kill = Kill(sorted(rng.sample(range(2 * DEVICES, 4 * DEVICES), KILLS)), server)
    fleet: list[Device] = []
    try:
        server.publish_codebook()
        template = device_template(server, tmp_path / "template", [rng.randrange(8)])
        for n in range(DEVICES):
            brain, clock = copy_device(template, tmp_path / f"tv{n}")
            fleet.append(Device(n, brain, clock, kill))
        kill.fleet = fleet

        async def scenario() -> None:
            restarts = asyncio.create_task(kill.restart_each_time())
            try:
                await asyncio.gather(*(_run_device(d, server.base_url) for d in fleet))
            finally:
                if not restarts.done():  # the fleet finished before every kill came
                    restarts.cancel()
            await restarts

        asyncio.run(scenario())
        assert len(kill.in_flight) == KILLS  # each kill came with pushes under way
        assert min(kill.in_flight) >= DEVICES // 4
        assert sum(d.failures for d in fleet) > 0  # and the devices rode out the outages

        stored = _stored(server.db_url)
        for device in fleet:
            assert device.brain.sync.outbox_size() == 0 and device.brain.sync.inflight() is None
            recorded = Counter(k for batch in device.batches.values() for k in batch)
            held = Counter({k: n for (v, k), n in stored.items() if v == device.viewer})
            assert held == recorded, f"tv{device.number}: stored ≠ pushed"  # once, none lost
            assert set(device.batches) == device.acked  # every batch acknowledged in the end
            for batch in kill.acked_before[device.number]:  # acknowledged before a kill
                assert all(held[k] == 1 for k in device.batches[batch])
        assert max(stored.values()) == 1  # no pattern version twice, for any viewer
        assert sum(len(d.batches) for d in fleet) > DEVICES  # several pushes per device
    finally:
        for device in fleet:
            device.brain.close()
        server.stop()
