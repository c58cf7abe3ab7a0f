"""The engine workers' side of ``omega.sim.engine_replay``: one task replays a batch of
viewers' events of one step through their brains (opened from, and closed back to, their
directories) and syncs each where the local replay would; what the brains hold only in
memory rides beside them between tasks (:class:`Carried`)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import pickle
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from omega.brain import Brain, BrainConfig
from omega.brain.learner import RecentTitle
from omega.clock import ManualClock
from omega.protocol.attestation import Manufacturer
from omega.sim.audit import AuditingTransport, PrivacyAudit
from omega.sim.engine_fleet import load_catalog
from omega.sim.fleet import play
from omega.sync.client import SyncClient
from omega.sync.transport import HttpTransport, Transport

__all__ = ["Carried", "Event", "ReplayTask", "TaskDone", "merge_audit", "replay_batch"]


#: One event of a task: (simulated time, item id or None for a sync alone, stars, sync?).
Event = tuple[float, str | None, float, bool]


@dataclass(frozen=True, slots=True)
class ReplayTask:
    """One engine task: these viewers' events of one step (or their catch-up syncs)."""

    root: str
    catalog: str
    config: BrainConfig
    viewers: tuple[int, ...]
    clocks: tuple[float, ...]  # each viewer's clock as the step starts
    events: tuple[tuple[Event, ...], ...]
    server: str | None = None  # None: a local-only fleet (no syncs)
    maker: tuple[str, str, bytes] | None = None  # manufacturer id, key id, raw key
    helper_key: bytes | None = None
    pull_bytes: int = 5120
    shared_epsilon: float = 0.0
    #: Sync each viewer until it holds the whole release (``omega.sim.fleet_replay.catch_up``).
    catch_up: bool = False


@dataclass(slots=True)
class TaskDone:
    """What a task's syncs did (the audit without its catalog, summed by the driver)."""

    syncs: int = 0
    pushes: int = 0
    audit: PrivacyAudit | None = None


@dataclass(slots=True)
class Carried:
    """What a viewer's brain and sync client hold only in memory, kept beside the brain
    between tasks: the client's seeded report RNG (None: no client), and the learner's
    titles interacted with and recent titles. The brain rebuilds the last two from its
    stored episodes when it opens, and the weekly loop prunes episodes past the retention
    (180 days), so a reopened brain would forget titles a brain that stayed open (the
    local replay's) remembers."""

    rng: random.Random | None = None
    interacted: set[int] = field(default_factory=set)
    recent: list[RecentTitle] = field(default_factory=list)

    @staticmethod
    def path(root: str | Path, viewer: int) -> Path:
        return Path(root) / "carried" / f"viewer-{viewer}.pickle"

    @classmethod
    def load(cls, root: str | Path, viewer: int, brain: Brain) -> Carried:
        """The viewer's carried state (our own file), put back into ``brain``."""
        carried: Carried = pickle.loads(cls.path(root, viewer).read_bytes())
        brain.learner.interacted = set(carried.interacted)
        brain.learner.recent.clear()
        brain.learner.recent.extend(carried.recent)
        return carried

    def save(self, root: str | Path, viewer: int, brain: Brain) -> None:
        self.interacted = set(brain.learner.interacted)
        self.recent = list(brain.learner.recent)
        self.path(root, viewer).write_bytes(pickle.dumps(self))


def replay_batch(task: ReplayTask) -> TaskDone:
    """One task, on an engine worker: replay a batch of viewers' events of one step."""
    return asyncio.run(_replay_batch(task))


async def _replay_batch(task: ReplayTask) -> TaskDone:
    done = TaskDone()
    if task.server is not None:
        ids, titles = _audited(task.catalog)
        done.audit = PrivacyAudit(ids, titles, shared_epsilon=task.shared_epsilon)
    transport = HttpTransport(task.server) if task.server is not None else None
    try:
        for v, at, events in zip(task.viewers, task.clocks, task.events, strict=True):
            await _replay_viewer(task, transport, done, v, at, events)
    finally:
        if transport is not None:
            await transport.aclose()
    if done.audit is not None:  # the catalog's names stay here: the driver has them
        done.audit = dataclasses.replace(done.audit, item_ids=frozenset(), titles=frozenset())
    return done


async def _replay_viewer(
    task: ReplayTask,
    transport: Transport | None,
    done: TaskDone,
    v: int,
    at: float,
    events: Sequence[Event],
) -> None:
    clock = ManualClock(at)
    catalog = load_catalog(task.catalog)
    brain = Brain.open(
        Path(task.root) / f"viewer-{v}", clock=clock, config=task.config, shared_catalog=catalog
    )
    try:
        carried = Carried.load(task.root, v, brain)
        client = _client(task, brain, transport, done, v, carried.rng)
        for ts, item, stars, due in events:
            clock.set(ts)
            if item is not None:
                play(brain, item, stars)
            if due and client is not None:
                await _sync(client, done)
        if client is not None and task.catch_up:
            for _ in range(50):
                result = await _sync(client, done)
                if not result.more and result.outbox_remaining == 0:
                    break
        carried.save(task.root, v, brain)
    finally:
        brain.close()


def _client(
    task: ReplayTask,
    brain: Brain,
    transport: Transport | None,
    done: TaskDone,
    v: int,
    rng: random.Random | None,
) -> SyncClient | None:
    """The viewer's sync client, with its report RNG as the last task left it."""
    if transport is None or task.maker is None or done.audit is None:
        return None
    manufacturer_id, key_id, raw = task.maker
    maker = Manufacturer(manufacturer_id, key_id, Ed25519PrivateKey.from_private_bytes(raw))
    client = SyncClient(
        brain,
        AuditingTransport(transport, done.audit, viewer=str(v)),
        max_pull_bytes=task.pull_bytes,
        report_rng=rng,
        helper_key=task.helper_key,
        # The serial ``SimConstellation.device`` gives it (it registers once: a new
        # device key each task is never used again).
        attestation=maker.device(f"sim-{key_id}-tv-{v}", model="sim-tv"),
    )
    return client


async def _sync(client: SyncClient, done: TaskDone) -> Any:
    result = await client.sync()
    done.syncs += 1
    assert done.audit is not None
    if result.batch_id is not None:
        done.pushes += 1
        done.audit.push_bytes.append(result.push_bytes)
    done.audit.pull_bytes.append(result.pull_bytes)
    return result


@functools.cache
def _audited(catalog: str) -> tuple[frozenset[str], frozenset[str]]:
    """The item ids and (casefolded) titles the audit looks for, once per worker."""
    items = load_catalog(catalog).catalog
    audit = PrivacyAudit.for_catalog(items.ids, (row.title for row in items.rows))
    return audit.item_ids, audit.titles


def merge_audit(into: PrivacyAudit, part: PrivacyAudit) -> None:
    """Add a task's audit to the fleet's. (A viewer's ε adds up per task: a report resent
    in a later task — a push retried after a failed sync — would count twice; the local
    replay's audit counts it once.)"""
    for name in (
        "requests",
        "pushes",
        "patterns_sent",
        "raw_items_sent",
        "event_records_sent",
        "search_strings_sent",
        "frequency_reports_sent",
        "shared_reports_sent",
    ):
        setattr(into, name, getattr(into, name) + getattr(part, name))
    into.report_epsilons |= part.report_epsilons
    for viewer, seeds in part.report_seeds.items():
        into.report_seeds.setdefault(viewer, set()).update(seeds)
    for viewer, spent in part.epsilon_spent.items():
        into.epsilon_spent[viewer] = into.epsilon_spent.get(viewer, 0.0) + spent
    into.push_bytes.extend(part.push_bytes)
    into.pull_bytes.extend(part.pull_bytes)
