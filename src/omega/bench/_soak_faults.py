"""The soak's faults: a seeded schedule, and what each did when it ran.

Three kinds, each done from outside, as on a real host:

- ``server-restart``: SIGKILL of ``omega serve`` (its round child, if one is running,
  lives on and finishes its round, as it would), then a start ``server_down`` seconds
  later on the same port, data directory and database;
- ``resets``: every connection through the proxy reset at once, then four cuts — a
  request at its first byte and at a seeded offset, an answer at its first byte and at
  a seeded offset — each on the next connection moving bytes that way;
- ``helper-outage``: SIGKILL of ``omega helper serve``, started again ``helper_down``
  seconds later; the server's rounds meanwhile leave two-server reports queued.

:func:`schedule` shuffles them (seeded) over 5–85 % of the run with seeded gaps, one
after another; :class:`FaultRunner` runs them, one line per fault for the progress
display, and keeps the windows in which syncs were exposed to a server or reset fault.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from omega.bench._fresh_tv import rss_mb
from omega.bench._soak_audit import popularity_queue
from omega.bench._soak_figures import Window
from omega.bench._soak_parts import Child
from omega.bench.faults import Direction, ResetProxy
from omega.errors import InputError

__all__ = ["SETTLE", "Fault", "FaultRunner", "schedule"]

Progress = Callable[[str, Mapping[str, Any]], None]
SETTLE = 2.0  # seconds after a fault still counted in its window
_RESET_WINDOW = 2.0
_START = 4.0  # about what starting omega serve or the helper takes, for the spacing


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str  # "server-restart", "resets", "helper-outage"
    at: float  # seconds after the load started


def schedule(
    *,
    duration: float,
    restarts: int,
    reset_bursts: int,
    server_down: float,
    helper_down: float,
    rng: random.Random,
) -> list[Fault]:
    """The faults in a seeded order, spread with seeded gaps over 5–85 % of the run
    (``InputError`` if they do not fit)."""
    kinds = ["server-restart"] * restarts + ["resets"] * reset_bursts + ["helper-outage"]
    rng.shuffle(kinds)
    length = {
        "server-restart": server_down + _START,
        "resets": _RESET_WINDOW,
        "helper-outage": helper_down + _START,
    }
    begin, end = 0.05 * duration, 0.85 * duration
    needed = sum(length[k] for k in kinds)
    free = end - begin - needed
    if free < 0:
        raise InputError(
            f"{len(kinds)} faults need about {needed:.0f} s, more than 80 % of the "
            f"{duration:g} s run: raise --minutes or lower --restarts / --reset-bursts"
        )
    weights = [rng.random() for _ in range(len(kinds) + 1)]
    faults, t = [], begin
    for kind, weight in zip(kinds, weights, strict=False):
        t += free * weight / sum(weights)
        faults.append(Fault(kind, round(t, 2)))
        t += length[kind]
    return faults


@dataclass
class FaultRunner:
    """Runs a schedule against the parts; keeps what happened."""

    server: Child
    helper: Child
    db_url: str
    proxy: ResetProxy
    server_down: float
    helper_down: float
    rng: random.Random
    say: Progress
    events: list[dict[str, Any]] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    #: Two-server reports the servers had counted when the helper came back.
    counted_at_helper_return: int | None = None

    async def run(self, faults: list[Fault], t0: float) -> None:
        """Each fault at ``t0 + fault.at`` (monotonic), or at once if the last overran."""
        for fault in faults:
            await asyncio.sleep(max(0.0, t0 + fault.at - time.monotonic()))
            began = time.monotonic()
            do = {
                "server-restart": self._server_restart,
                "resets": self._resets,
                "helper-outage": self._helper_outage,
            }[fault.kind]
            event = {"kind": fault.kind, "at_s": round(began - t0, 2), **await do(began)}
            self.events.append(event)
            self.say("fault", event)

    def _window(self, began: float) -> None:
        self.windows.append(Window(len(self.events), began, time.monotonic() + SETTLE))

    async def _server_restart(self, began: float) -> dict[str, Any]:
        server = self.server
        pid = server.pid
        rss = rss_mb(pid) if pid else float("nan")
        orphans = len(server.orphans)
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(self.server_down)
        await asyncio.to_thread(server.start)
        self._window(began)
        return {
            "pid_killed": pid,
            "rss_mb_at_kill": round(rss, 1),
            "down_s": round(time.monotonic() - began, 2),
            "round_child_left_running": len(server.orphans) - orphans,
        }

    async def _resets(self, began: float) -> dict[str, Any]:
        proxy, rng = self.proxy, self.rng
        before = len(proxy.resets)
        at_once = proxy.reset_all()
        offsets: list[tuple[Direction, int]] = [
            ("up", 0),
            ("up", rng.randrange(1, 400)),
            ("down", 0),
            ("down", rng.randrange(40, 2000)),
        ]
        cuts = [proxy.cut(direction, after=after) for direction, after in offsets]
        while any(c is a for c in cuts for a in proxy.armed):
            if time.monotonic() > began + _RESET_WINDOW:
                break
            await asyncio.sleep(0.02)
        left = proxy.disarm()  # none, unless the fleet moved no bytes for 2 s
        self._window(began)
        return {
            "connections_reset_at_once": at_once,
            "cuts": [f"{direction}@{after}" for direction, after in offsets],
            "cuts_fired": len(cuts) - len(left),
            "resets": len(proxy.resets) - before,
        }

    async def _helper_outage(self, began: float) -> dict[str, Any]:
        helper = self.helper
        pid = helper.pid
        rss = rss_mb(pid) if pid else float("nan")
        queued_at_kill, counted_at_kill = await asyncio.to_thread(popularity_queue, self.db_url)
        await asyncio.to_thread(helper.kill)
        await asyncio.sleep(self.helper_down)
        queued, counted = await asyncio.to_thread(popularity_queue, self.db_url)
        await asyncio.to_thread(helper.start)
        self.counted_at_helper_return = counted
        return {
            "pid_killed": pid,
            "rss_mb_at_kill": round(rss, 1),
            "down_s": round(time.monotonic() - began, 2),
            "shares_queued_at_kill": queued_at_kill,
            "shares_queued_at_return": queued,
            "shares_counted_while_down": counted - counted_at_kill,
        }
