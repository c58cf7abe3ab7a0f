"""The device runtime against the real constellation app in this process, on a hand-moved
clock: days of syncing run in a moment and the same way every time.

Outages here are a reverse proxy's (the app behind it is unreachable: 502); the
connection-refused outage of a SIGKILLed server is in ``test_sync_runtime_restart.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _sync_world import (
    inprocess_settings,
    open_brain,
    pending_upserts,
    publish_codebook_via,
    trust_via,
    watch,
)

from omega.clock import ManualClock
from omega.constellation import create_app
from omega.errors import AuthError
from omega.protocol.attestation import DeviceIdentity, Manufacturer
from omega.sync import (
    AsgiTransport,
    DeviceRuntime,
    HttpTransport,
    RuntimeStatus,
    SyncClient,
    SyncSchedule,
)
from omega.sync.cursors import load_credentials, save_credentials

PORTAL_PAGE = b"<html><body><h1>Welcome!</h1>Accept the terms to use the Wi-Fi.</body></html>"


class Proxy:
    """ASGI middleware in front of the real app, as a reverse proxy: while ``down`` it
    answers 502 itself (the app never sees the request); while ``portal`` is a status
    (401, 403) it answers every request with that status and an HTML page, as a captive
    portal or a corporate proxy does; for the next ``throttle`` syncs it answers 429 with
    ``Retry-After: 120``, as a gateway's rate limit does; with ``hold_answers`` the app
    handles each sync fully (commits) and its answer waits until ``release()``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.down = False
        self.portal: int | None = None
        self.throttle = 0
        self.hold_answers = False
        self.parked = asyncio.Event()
        self._release = asyncio.Event()
        self.refused = 0

    def release(self) -> None:
        self._release.set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.portal is not None:
            self.refused += 1
            headers = [(b"content-type", b"text/html; charset=utf-8")]
            await send({"type": "http.response.start", "status": self.portal, "headers": headers})
            await send({"type": "http.response.body", "body": PORTAL_PAGE})
            return
        if self.down or (self.throttle and scope["path"] == "/api/omega/sync"):
            status, headers = (502, []) if self.down else (429, [(b"retry-after", b"120")])
            self.throttle -= 0 if self.down else 1
            self.refused += 1
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b"not now"})
            return
        if not (self.hold_answers and scope["path"] == "/api/omega/sync"):
            await self.app(scope, receive, send)
            return
        messages: list[Any] = []

        async def keep(message: Any) -> None:
            messages.append(message)

        await self.app(scope, receive, keep)
        self.parked.set()
        await self._release.wait()
        for message in messages:
            await send(message)


class World:
    """A TV brain (on its own clock: watching moves it) and a runtime clock."""

    def __init__(self, tmp_path: Path, **server: Any) -> None:
        self.brain_clock = ManualClock()
        self.clock = ManualClock()
        self.app = create_app(inprocess_settings(tmp_path / "server", **server), clock=self.clock)
        self.proxy = Proxy(self.app)
        self.tv = open_brain(tmp_path / "tv", self.brain_clock)
        self.db = tmp_path / "server" / "constellation.db"
        self.seen: list[RuntimeStatus] = []

    async def sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await asyncio.sleep(0)

    def runtime(
        self,
        transport: AsgiTransport,
        *,
        until: Callable[[RuntimeStatus, DeviceRuntime], None],
        **options: Any,
    ) -> DeviceRuntime:
        holder: list[DeviceRuntime] = []

        def on_status(status: RuntimeStatus) -> None:
            self.seen.append(status)
            until(status, holder[0])

        values: dict[str, Any] = {
            "schedule": SyncSchedule(interval=600, base=1.0, cap=60.0, first_delay=0),
            "tick": 60.0,
            "clock": self.clock,
            "sleep": self.sleep,
            "rng": random.Random(7),
            "on_status": on_status,
            **options,
        }
        holder.append(DeviceRuntime(self.tv, transport, **values))
        return holder[0]

    def successes(self) -> list[RuntimeStatus]:
        """One status per completed sync (the first published after it)."""
        out: list[RuntimeStatus] = []
        for status in self.seen:
            if status.state == "active" and status.syncs > (out[-1].syncs if out else 0):
                out.append(status)
        return out

    def check_exactly_once(self) -> None:
        """Every change the TV shared is on the server once: nothing lost, nothing twice."""
        assert self.tv.sync.outbox_size() == 0 and self.tv.sync.inflight() is None
        creds = load_credentials(self.tv)
        assert creds is not None
        stored = pending_upserts(self.db, creds.viewer_id)
        assert stored and set(stored.values()) == {1}
        shared = {(s.id, s.version) for s in self.tv.learner.bank if s.shared_rate >= 0}
        assert shared and shared <= set(stored)


def _stop_after(syncs: int) -> Callable[[RuntimeStatus, DeviceRuntime], None]:
    def until(status: RuntimeStatus, runtime: DeviceRuntime) -> None:
        if status.syncs >= syncs:
            runtime.stop()

    return until


@pytest.mark.parametrize("server_interval", [100.0, 5000.0])
def test_syncs_come_at_the_jittered_interval_and_never_before_the_server_asks(
    tmp_path: Path, server_interval: float
) -> None:
    world = World(tmp_path, sync_interval=server_interval, sync_jitter=0.1)

    async def scenario() -> None:
        async with AsgiTransport(world.proxy, lifespan_app=world.app) as transport:
            await publish_codebook_via(transport)
            schedule = SyncSchedule(interval=1000, jitter=0.1, first_delay=0)
            runtime = world.runtime(transport, until=_stop_after(8), schedule=schedule)
            await runtime.run()

    asyncio.run(scenario())
    done = world.successes()
    assert len(done) == 8
    gaps = []
    for before, after in itertools.pairwise(done):
        assert before.last_success_at is not None and after.last_success_at is not None
        gaps.append(after.last_success_at - before.last_success_at)
    for before, gap in zip(done, gaps, strict=False):
        assert before.last_result is not None
        asked = before.last_result.next_sync_after
        assert gap >= asked - 1e-6  # the server's pace is a floor (epoch-sized floats)
        if server_interval < 900:
            assert 900 <= gap <= 1100  # the device's own interval, ± 10 %
        else:
            assert gap == pytest.approx(asked)  # the slower server sets the pace
    assert len({round(g, 3) for g in gaps}) == len(gaps)  # jittered: no two alike
    world.tv.close()


def test_an_outage_is_ridden_out_with_capped_full_jitter_and_nothing_lost(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    schedule = SyncSchedule(interval=600, base=1.0, cap=60.0, first_delay=0)

    def script(status: RuntimeStatus, runtime: DeviceRuntime) -> None:
        proxy = world.proxy
        if status.syncs == 1 and not proxy.down and status.failures == 0:
            proxy.down = True  # the server goes away…
            watch(world.tv, world.brain_clock, [3, 4, 5])  # …while the household watches on
        elif status.consecutive_failures >= 12:
            proxy.down = False
        if status.syncs >= 3:
            runtime.stop()

    async def scenario() -> None:
        async with AsgiTransport(world.proxy, lifespan_app=world.app) as transport:
            await publish_codebook_via(transport)
            watch(world.tv, world.brain_clock, [0, 1, 2])
            await world.runtime(transport, until=script, schedule=schedule).run()

    asyncio.run(scenario())
    backoffs = [s for s in world.seen if s.state == "backoff"]
    assert [s.consecutive_failures for s in backoffs] == list(range(1, 13))
    for status in backoffs:
        assert status.next_sync_at is not None and status.last_failure_at is not None
        wait = status.next_sync_at - status.last_failure_at
        assert 0 <= wait <= schedule.window(status.consecutive_failures)
        assert "502" in (status.last_error or "")
    assert schedule.window(12) == 60.0  # the windows reached the cap and stayed there
    final = world.seen[-1]
    assert final.state == "stopped" and final.failures == 12 and final.syncs == 3
    assert world.proxy.refused == 12
    world.check_exactly_once()  # including what was watched during the outage
    world.tv.close()


def test_retry_after_is_a_floor_under_the_backoff(tmp_path: Path) -> None:
    world = World(tmp_path)
    tiny = SyncSchedule(interval=1.0, jitter=0.0, base=0.01, cap=0.05, first_delay=0)
    limited: list[RuntimeStatus] = []

    def script(status: RuntimeStatus, runtime: DeviceRuntime) -> None:
        if status.state == "backoff":
            limited.append(status)
        if status.syncs == 2 and not limited:
            world.proxy.throttle = 3
        if status.syncs >= 4:
            runtime.stop()

    async def scenario() -> None:
        async with AsgiTransport(world.proxy, lifespan_app=world.app) as transport:
            await publish_codebook_via(transport)
            await world.runtime(transport, until=script, schedule=tiny).run()

    asyncio.run(scenario())
    assert [s.consecutive_failures for s in limited] == [1, 2, 3]
    for status in limited:
        assert "429" in (status.last_error or "")
        assert status.next_sync_at is not None and status.last_failure_at is not None
        # The backoff window is at most 0.05 s; the server asked for 120.
        assert status.next_sync_at - status.last_failure_at == pytest.approx(120.0)
    assert world.seen[-1].syncs == 4  # and then it went on syncing
    world.tv.close()


def test_credentials_that_cannot_heal_stop_the_runtime_loudly_and_keep_the_outbox(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, access_token_ttl=60, jwt_leeway=0)

    async def scenario() -> None:
        async with AsgiTransport(world.proxy, lifespan_app=world.app) as transport:
            await publish_codebook_via(transport)
            client = SyncClient(world.tv, transport)
            await client.fetch_codebook()
            creds = load_credentials(world.tv)
            assert creds is not None
            await client._session.refresh(creds.access_token)  # spent elsewhere (a cloned TV, say)
            save_credentials(world.tv, creds)
            world.clock.advance(120)  # the access token has run out
            watch(world.tv, world.brain_clock, [0, 1, 2])

            def until(status: RuntimeStatus, runtime: DeviceRuntime) -> None:
                if status.failures >= 3:  # retrying it: stop, and fail below
                    runtime.stop()

            with pytest.raises(AuthError, match="register again"):
                await world.runtime(transport, until=until).run()

    asyncio.run(scenario())
    states = [s.state for s in world.seen]
    assert states[-2:] == ["stopping", "failed"] and "backoff" not in states
    assert world.seen[-1].syncs == 0 and "AuthError" in (world.seen[-1].last_error or "")
    assert world.tv.sync.outbox_size() > 0  # what was learned waits for new credentials
    world.tv.close()


def test_a_captive_portals_401_and_403_pages_are_ridden_out_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    """A TV boots behind a captive portal (403 and an HTML page for everything, its
    registration included); later a proxy wants a login (401 to the sync, and to the token
    refresh that 401 sets off). Neither is the constellation's refusal: the runtime backs
    off, a minute more than after an outage, and syncs once the real server answers."""
    world = World(tmp_path)
    schedule = SyncSchedule(interval=600, base=1.0, cap=60.0, first_delay=0)
    login_wanted = [False]

    def script(status: RuntimeStatus, runtime: DeviceRuntime) -> None:
        proxy = world.proxy
        if status.consecutive_failures >= 3 and proxy.portal is not None:
            proxy.portal = None  # the terms accepted, the proxy let through
        elif status.syncs == 1 and not login_wanted[0]:
            login_wanted[0] = True
            proxy.portal = 401
            watch(world.tv, world.brain_clock, [3, 4, 5])
        if status.syncs >= 2:
            runtime.stop()

    async def scenario() -> None:
        async with AsgiTransport(world.proxy, lifespan_app=world.app) as transport:
            await publish_codebook_via(transport)
            watch(world.tv, world.brain_clock, [0, 1, 2])
            world.proxy.portal = 403
            await world.runtime(transport, until=script, schedule=schedule).run()

    asyncio.run(scenario())
    assert "failed" not in [s.state for s in world.seen]
    backoffs = [s for s in world.seen if s.state == "backoff"]
    assert [s.consecutive_failures for s in backoffs] == [1, 2, 3, 1, 2, 3]
    for status, code in zip(backoffs, ["403"] * 3 + ["401"] * 3, strict=True):
        assert f"server answered {code}" in (status.last_error or "")
        assert "not the constellation's answer" in (status.last_error or "")
        assert status.next_sync_at is not None and status.last_failure_at is not None
        wait = status.next_sync_at - status.last_failure_at
        floor = schedule.refused_floor
        assert floor <= wait <= floor + schedule.window(status.consecutive_failures)
    final = world.seen[-1]
    assert final.state == "stopped" and final.syncs == 2 and final.failures == 6
    world.check_exactly_once()  # including what was watched behind the proxy
    world.tv.close()


class SkewedClock:
    """A TV's wall clock before NTP has set it: ``offset`` seconds off the true time."""

    def __init__(self, true: ManualClock, offset: float) -> None:
        self.true, self.offset = true, offset

    def now(self) -> float:
        return self.true.now() + self.offset


def test_a_registration_refused_for_a_clock_not_yet_set_is_retried_until_it_is(
    tmp_path: Path,
) -> None:
    """A TV that boots before NTP signs its registration a year in the past: the
    constellation refuses it (403 attestation-refused, "set the device's clock"). That
    heals once the clock is set, so the runtime backs off and registers then."""
    world = World(tmp_path, allow_unattested=False)
    maker = Manufacturer.generate("runtime-maker", "k1")
    factory = maker.device("SN-7", clock=world.clock)
    tv_clock = SkewedClock(world.clock, offset=-365 * 86_400.0)
    identity = DeviceIdentity(factory.certificate, factory.key, tv_clock)

    def script(status: RuntimeStatus, runtime: DeviceRuntime) -> None:
        if status.consecutive_failures >= 2:
            tv_clock.offset = 0.0  # NTP answered
        if status.syncs >= 1:
            runtime.stop()

    async def scenario() -> None:
        async with AsgiTransport(world.proxy, lifespan_app=world.app) as transport:
            await publish_codebook_via(transport)
            await trust_via(transport, maker)
            watch(world.tv, world.brain_clock, [0, 1, 2])
            options = {"attestation": identity}
            await world.runtime(transport, until=script, sync_options=options).run()

    asyncio.run(scenario())
    backoffs = [s for s in world.seen if s.state == "backoff"]
    assert [s.consecutive_failures for s in backoffs] == [1, 2]
    for status in backoffs:
        assert "403" in (status.last_error or "")
        assert "set the device's clock" in (status.last_error or "")
    final = world.seen[-1]
    assert final.state == "stopped" and final.syncs == 1
    world.check_exactly_once()
    world.tv.close()


def test_the_constellations_lasting_refusal_stops_the_runtime_at_once(tmp_path: Path) -> None:
    """A TV with no certificate against a server that registers attested TVs only: the
    constellation's own 403 (attestation-required) cannot heal by waiting — failed, said,
    with the outbox kept."""
    world = World(tmp_path, allow_unattested=False)

    async def scenario() -> None:
        async with AsgiTransport(world.proxy, lifespan_app=world.app) as transport:
            await publish_codebook_via(transport)
            watch(world.tv, world.brain_clock, [0, 1, 2])

            def until(status: RuntimeStatus, runtime: DeviceRuntime) -> None:
                if status.failures >= 3:  # retrying it: stop, and fail below
                    runtime.stop()

            with pytest.raises(AuthError, match="attestation-required"):
                await world.runtime(transport, until=until).run()

    asyncio.run(scenario())
    states = [s.state for s in world.seen]
    assert states[-2:] == ["stopping", "failed"] and "backoff" not in states
    assert world.tv.sync.outbox_size() > 0
    world.tv.close()


def test_a_runtime_opens_its_http_transport_only_when_it_runs_and_closes_it(
    tmp_path: Path,
) -> None:
    tv = open_brain(tmp_path / "tv", ManualClock())
    never_run = DeviceRuntime(tv, "http://127.0.0.1:9")
    assert never_run.transport is None  # nothing opened, so nothing to leak

    ran = DeviceRuntime(tv, "http://127.0.0.1:9", schedule=SyncSchedule(first_delay=0))
    ran.stop()  # asked before it runs: run() starts and stops at once
    asyncio.run(ran.run())
    assert isinstance(ran.transport, HttpTransport)
    assert ran.transport._client.is_closed
    assert ran.status().state == "stopped"
    tv.close()


def test_stop_abandons_a_sync_whose_answer_is_late_and_the_next_run_resends_it_once(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)

    async def scenario() -> None:
        async with AsgiTransport(world.proxy, lifespan_app=world.app) as transport:
            await publish_codebook_via(transport)
            watch(world.tv, world.brain_clock, [0, 1, 2])
            world.proxy.hold_answers = True
            runtime = world.runtime(transport, until=lambda s, r: None, grace=5.0)
            running = asyncio.ensure_future(runtime.run())
            await world.proxy.parked.wait()  # committed on the server, answer on its way
            started = world.clock.now()
            runtime.stop()
            await running
            assert world.clock.now() - started == pytest.approx(5.0)  # the grace, then gone
            assert world.tv.sync.inflight() is not None
            world.proxy.hold_answers = False
            world.proxy.release()
            again = world.runtime(transport, until=lambda s, r: None)
            asked = again.sync_now()  # asked before it runs: its first sync answers it
            running = asyncio.ensure_future(again.run())
            result = await asyncio.wrap_future(asked)
            again.stop()
            await running
            assert result.resent and result.accepted == result.pushed > 0

    asyncio.run(scenario())
    assert world.seen[-1].state == "stopped"
    world.check_exactly_once()
    world.tv.close()


def test_the_runtime_drives_the_brains_loops_on_its_clock(tmp_path: Path) -> None:
    """An idle session ends on the tick (not at the next event), the daily consolidation
    runs with nobody watching, and the brain's stats say when each loop last ran."""
    world = World(tmp_path)
    world.brain_clock = world.clock  # one clock for both here: the loops read the brain's
    world.tv.close()
    world.tv = open_brain(tmp_path / "tv", world.clock)
    watch(world.tv, world.clock, [0, 1])
    assert world.tv.stats()["tiers"]["instant"]["strength"] > 0  # type: ignore[index]
    start = world.clock.now()

    def until(status: RuntimeStatus, runtime: DeviceRuntime) -> None:
        if world.clock.now() - start > 26 * 3600:
            runtime.stop()

    async def scenario() -> None:
        async with AsgiTransport(world.proxy, lifespan_app=world.app) as transport:
            await publish_codebook_via(transport)
            schedule = SyncSchedule(interval=3600, first_delay=0)
            await world.runtime(transport, until=until, schedule=schedule, tick=300).run()

    asyncio.run(scenario())
    stats = world.tv.stats()
    assert stats["tiers"]["instant"]["strength"] == 0  # type: ignore[index]
    loops: dict[str, dict[str, Any]] = stats["loops"]  # type: ignore[assignment]
    assert list(loops) == [
        "reflexive",
        "reactive",
        "adaptive",
        "deliberative",
        "evolutionary",
        "transformative",
        "transcendent",
    ]
    # The runtime stops at its first step past 26 h; a sync's backoff (a request that timed
    # out on a loaded machine) may carry the clock further than a tick past that, so the
    # loops' cadence is measured from where the ticks had to reach, not from ``now``.
    end = start + 26 * 3600
    assert loops["reactive"]["last_ran"] >= end - 300
    assert loops["adaptive"]["last_ran"] >= end - 3600 * 1.1
    assert loops["deliberative"]["last_ran"] > start  # consolidated with no event at all
    assert loops["reflexive"]["last_ran"] < start  # the last event, before the runtime ran
    assert loops["transcendent"]["last_ran"] is None
    world.tv.close()


def test_stop_flushes_what_the_brain_learned_since_the_last_sync(tmp_path: Path) -> None:
    world = World(tmp_path)

    def script(status: RuntimeStatus, runtime: DeviceRuntime) -> None:
        if status.syncs == 1 and status.state == "active":
            watch(world.tv, world.brain_clock, [5, 6])  # learned, not yet flushed
            runtime.stop()

    async def scenario() -> None:
        async with AsgiTransport(world.proxy, lifespan_app=world.app) as transport:
            await publish_codebook_via(transport)
            await world.runtime(transport, until=script).run()

    asyncio.run(scenario())
    # Read by a second connection: only what was flushed (committed) is there.
    other = open_brain(tmp_path / "tv", ManualClock(world.brain_clock.now()))
    assert other.sync.outbox_size() > 0
    other.close()
    world.tv.close()
