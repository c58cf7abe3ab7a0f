"""Replay viewing logs through a fleet of brains that sync with a real constellation.

One viewer = one brain. Every viewer's training interactions replay in global timestamp
order; each brain's clock is set to the event's time, so memory tiers decay in simulated
time. A viewer syncs (push + pull, the real protocol) every few events or simulated
hours; federation rounds run as simulated time passes. A second, local-only fleet replays
the same events with federation off, as the baseline Omega must beat.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from omega.brain.catalog import SharedCatalog
from omega.sim.attacks import AttackKind
from omega.sim.constellation import SimConstellation
from omega.sim.cowatch_private import PrivateCowatch
from omega.sim.datasets import Dataset
from omega.sim.evaluation import Split
from omega.sim.fleet import (
    Attack,
    FleetConfig,
    FleetRun,
    Viewer,
    event_order,
    forgery_of,
    open_fleet,
    play,
)

__all__ = ["catch_up", "finish", "replay_fleet"]


async def replay_fleet(
    dataset: Dataset,
    split: Split,
    shared: SharedCatalog,
    *,
    root: Path,
    config: FleetConfig,
    constellation: SimConstellation | None,
    attack: AttackKind | None = None,
    attackers: frozenset[int] = frozenset(),
    target_cell: int = -1,
    target_item: str | None = None,
    checkpoints: int = 0,
    on_checkpoint: Callable[[FleetRun, float], dict[str, float]] | None = None,
    progress: Callable[[int, int], None] | None = None,
    helper_key: bytes | None = None,
    private: PrivateCowatch | None = None,
) -> FleetRun:
    """Replay every viewer's training history; sync through ``constellation`` if given
    (sending two-server reports sealed to ``helper_key`` when given, and co-watch pairs
    through ``private`` when given)."""
    item_ids = [i.item_id for i in dataset.items]
    forgery = None
    if config.cowatch != "off" and attack == "promote-item" and target_item is not None:
        forgery = forgery_of(split, item_ids, list(shared.catalog.ids), target_item)
        if config.cowatch_attack == "withhold":
            forgery.sources.clear()
    run = open_fleet(
        dataset,
        shared,
        viewers=split.n_viewers,
        root=root,
        config=config,
        constellation=constellation,
        attack=Attack(attack, target_cell, target_item) if attack is not None else None,
        attackers=attackers,
        helper_key=helper_key,
        private=private,
        forgery=forgery,
    )
    await _replay(
        run,
        split,
        item_ids,
        config=config,
        constellation=constellation,
        checkpoints=checkpoints,
        on_checkpoint=on_checkpoint,
        progress=progress,
    )
    run.scored.clear()  # the checkpoints' scores: the brains change from here on
    if constellation is not None:
        await finish(run, constellation)
    return run


async def _replay(
    run: FleetRun,
    split: Split,
    item_ids: list[str],
    *,
    config: FleetConfig,
    constellation: SimConstellation | None,
    checkpoints: int,
    on_checkpoint: Callable[[FleetRun, float], dict[str, float]] | None,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Every training event in time order: track it, sync, run the rounds that are due."""
    who, what, stars, when = event_order(split)
    next_round = float(when[0]) + config.round_every_s if len(when) else 0.0
    pushes_since_round = 0
    # Checkpoints at evenly spaced events (positions, so they always fall on an event).
    marks = (
        {len(who) * k // checkpoints - 1 for k in range(1, checkpoints)}
        if checkpoints > 1
        else set()
    )
    for n in range(len(who)):
        viewer = run.viewers[int(who[n])]
        ts = float(when[n])
        viewer.clock.set(ts)
        play(viewer.brain, item_ids[int(what[n])], float(stars[n]))
        viewer.changes += 1
        viewer.since_sync += 1
        viewer.cowatch.pending = True
        if (
            viewer.client is not None
            and (
                viewer.since_sync >= config.sync_every or ts - viewer.last_sync >= config.sync_gap_s
            )
            and await _sync(viewer, run)
        ):
            pushes_since_round += 1
        if constellation is not None and ts >= next_round:
            if pushes_since_round >= config.round_min_pushes:
                await _round(constellation, run)
                pushes_since_round = 0
            next_round = ts + config.round_every_s
            if run.private is not None and config.cowatch_idle_syncs:
                await _idle_contributions(run, ts)
        if n in marks and on_checkpoint is not None:
            run.checkpoints.append({"ts": ts, **on_checkpoint(run, ts)})
        if progress is not None and (n % 500 == 0 or n == len(who) - 1):
            progress(n + 1, len(who))


async def _sync(viewer: Viewer, run: FleetRun) -> bool:
    assert viewer.client is not None
    viewer.since_sync = 0
    viewer.last_sync = viewer.clock.now()
    if run.private is not None:
        run.private.at(viewer.last_sync)
    result = await viewer.client.sync()
    viewer.changes += 1
    run.syncs += 1
    if run.private is not None:
        run.private.note(result.cowatch_error)
        now = viewer.last_sync
        viewer.cowatch.after(viewer.brain, run.private.epoch_of(now), now, result.cowatch_sent)
    if run.cowatch is not None:
        if viewer.attacker and run.forgery is not None:
            run.cowatch.forge_epoch(viewer.index, run.forgery, run.pairs_per_epoch)
        else:
            run.cowatch.collect(viewer.brain, run.syncs)
        run.cowatch.deliver(viewer.brain)
    if run.audit is not None:
        if result.batch_id is not None:
            run.audit.push_bytes.append(result.push_bytes)
        run.audit.pull_bytes.append(result.pull_bytes)
    return result.batch_id is not None


async def _idle_contributions(run: FleetRun, at: float) -> None:
    """Idle TVs that may hold pairs sync at ``at`` once the epoch of their last
    contribution is over and their budget pays for a pair: what a TV that stays plugged
    in does; the budget and the per-epoch bound still apply."""
    assert run.private is not None
    epoch = run.private.epoch_of(at)
    for viewer in run.viewers.values():
        if viewer.client is not None and viewer.cowatch.due(epoch, at) and viewer.clock.now() <= at:
            viewer.clock.set(at)
            await _sync(viewer, run)


async def _round(constellation: SimConstellation, run: FleetRun) -> None:
    result = await constellation.run_round()
    run.rounds += 1
    if run.cowatch is not None:
        run.cowatch.publish()
    detail = result.get("result")
    if isinstance(detail, dict):
        run.cowatch_rows += int(detail.get("cowatch_rows", 0) or 0)
    if isinstance(detail, dict) and detail.get("status") == "released":
        run.released_versions += 1


async def catch_up(viewers: list[Viewer], run: FleetRun, *, max_syncs: int = 50) -> None:
    """Let TVs pull everything released so far (what an idle TV does overnight)."""
    for viewer in viewers:
        for _ in range(max_syncs):
            assert viewer.client is not None
            result = await viewer.client.sync()
            run.syncs += 1
            if run.audit is not None:
                run.audit.pull_bytes.append(result.pull_bytes)
                if result.batch_id is not None:
                    run.audit.push_bytes.append(result.push_bytes)
            if not result.more and result.outbox_remaining == 0:
                break


async def finish(run: FleetRun, constellation: SimConstellation) -> None:
    """Push what is left, run a last round, and bring every TV up to date."""
    online = [v for v in run.viewers.values() if v.client is not None]
    for viewer in online:
        await _sync(viewer, run)
    await _round(constellation, run)
    await catch_up(online, run)
    if run.cowatch is not None:
        for viewer in [*online, *([run.newcomer] if run.newcomer else [])]:
            run.cowatch.deliver(viewer.brain)
    if run.newcomer is not None and run.newcomer.client is not None:
        # Outside the audit and the sync counts: it is not one of the replayed viewers.
        run.newcomer.clock.set(run.ended_at())
        for _ in range(50):
            result = await run.newcomer.client.sync()
            run.newcomer_syncs += 1
            run.newcomer_pull_bytes += result.pull_bytes
            if not result.more:
                break
