"""A simulated fleet: its settings, its TVs (one brain each, with a sync client attested
to a real constellation, and an attacker's or a private co-watch contributor's parts),
and what a run of it holds. ``omega.sim.fleet_replay`` replays viewing logs through it.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from omega.brain import Brain, BrainConfig
from omega.brain.catalog import SharedCatalog
from omega.brain.config import COWATCH_EPSILON, REPORT_BUDGET, REPORT_WINDOW_S
from omega.clock import ManualClock
from omega.protocol.attestation import DeviceIdentity
from omega.protocol.messages import SharedReport
from omega.protocol.shares import make_shared_report
from omega.sim.attacks import AttackingTransport, AttackKind
from omega.sim.audit import AuditingTransport, PrivacyAudit
from omega.sim.constellation import SimConstellation
from omega.sim.cowatch_private import ForgedPairs, Plugged, PrivateCowatch, TvCowatch
from omega.sim.cowatch_release import CentralRelease, CowatchSource, Forgery
from omega.sim.datasets import Dataset
from omega.sim.evaluation import Split
from omega.sync.client import SyncClient
from omega.sync.cursors import CatalogOrder
from omega.sync.transport import Transport

__all__ = [
    "Attack",
    "FleetConfig",
    "FleetRun",
    "Viewer",
    "brain_config",
    "event_order",
    "fleet_run",
    "forgery_of",
    "join",
    "new_tv",
    "open_fleet",
    "play",
    "rating_to_view",
]

DAY = 86_400.0


def rating_to_view(stars: float) -> tuple[str, float]:
    """How a MovieLens rating replays on a TV: (event kind, watch fraction).

    5–4.5★ finished; 4★ 90%; 3.5★ 75%; 3★ 60%; 2.5★ 40%; 2★ 25% (an early abandon);
    1.5★ and below: skipped within the first minutes.
    """
    if stars >= 4.5:
        return "view", 1.0
    if stars <= 1.5:
        return "skip", 0.0
    return "view", {4.0: 0.9, 3.5: 0.75, 3.0: 0.6, 2.5: 0.4, 2.0: 0.25}.get(float(stars), 0.5)


def play(brain: Brain, item_id: str, stars: float) -> None:
    """Track one replayed rating on ``brain`` as the TV event :func:`rating_to_view` makes."""
    kind, fraction = rating_to_view(stars)
    if kind == "skip":
        brain.track_skip(item_id, at_seconds=60.0)
    else:
        brain.track_view(item_id, watch_fraction=fraction)


ReportKind = Literal["shared", "ldp"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetConfig:
    cells: int = 256
    #: A viewer syncs after this many events…
    sync_every: int = 10
    #: …or at its next event once this much simulated time passed since its last sync.
    sync_gap_s: float = DAY
    #: Federation rounds run once this much simulated time passed since the last one…
    round_every_s: float = 7 * DAY
    #: …and at least this many pushes arrived.
    round_min_pushes: int = 20
    pull_bytes: int = 5120
    seed: int = 0
    #: ε of each TV's popularity report (OLH, one per push at most); 0 sends none.
    report_epsilon: float = 8.0
    #: The most ε a TV's reports may spend per window (``BrainConfig.report_budget``).
    report_budget: float = REPORT_BUDGET
    report_window_s: float = REPORT_WINDOW_S
    #: "shared": two-server reports counted by the constellation with a helper (exact
    #: counts, neither server sees a title; ``omega.protocol.shares``); "ldp": ε-LDP OLH
    #: reports (no second server needed).
    reports: ReportKind = "shared"
    #: What a two-server report costs a TV's budget; both servers add noise of this ε.
    shared_epsilon: float = 4.0
    #: The constellation counts two-server reports in batches of at least this many.
    share_min_batch: int = 500
    #: Co-watch knowledge for the federated fleet: "off", or "central-k3", the centralised
    #: stand-in for the private release (``omega.sim.cowatch``).
    cowatch: CowatchSource = "off"
    #: With "private" (``omega.sim.cowatch_private``): the most pairs a TV contributes per
    #: epoch of ``cowatch_epoch_s`` simulated seconds (the epoch the constellation tells
    #: TVs), and the reports the helper holds before the leader gets a shuffled batch.
    cowatch_per_epoch: int = 128
    cowatch_epoch_s: float = 7 * DAY
    cowatch_min_batch: int = 100
    #: What one contributed pair costs a TV's report budget (None: ``shared_epsilon``);
    #: with ``cowatch_per_epoch`` tuned on the validation split (docs/cowatch.md).
    cowatch_epsilon: float | None = COWATCH_EPSILON
    #: With "private": a TV left with pairs to contribute syncs at each weekly tick of
    #: the replay while idle, as a TV that stays plugged in does (a MovieLens viewer
    #: rates a history in one sitting: one epoch, one epoch's pairs, without these).
    cowatch_idle_syncs: bool = True
    #: The spread rule against forged neighbours (0: off): the brains'
    #: (``BrainConfig.cowatch_spread``) and, with "private", the constellation's release's
    #: (``Settings.cowatch_spread``).
    cowatch_spread: float = 0.0
    #: What a promote-item coalition contributes as co-watch pairs: "forge" (popular
    #: titles → its target) or "withhold" (nothing: the control that measures what
    #: losing the coalition's honest pairs costs, without any forged one).
    cowatch_attack: Literal["forge", "withhold"] = "forge"
    #: With "private": central DP on the released counts, ε and δ of one private release
    #: (ε 0: off; ``omega.federation.cowatch_dp``).
    cowatch_dp_epsilon: float = 0.0
    cowatch_dp_delta: float = 1e-6
    #: Whether the TVs' and the constellation's durable commits wait for the disk, as
    #: real ones do. Off by default: a replay's files are thrown away, and the fsyncs
    #: (~7 per sync) cost a replay minutes of the disk's time, not of Omega's.
    fsync: bool = False


@dataclass(slots=True)
class Viewer:
    index: int
    brain: Brain
    clock: ManualClock
    client: SyncClient | None = None
    attacker: bool = False
    since_sync: int = 0
    last_sync: float = -math.inf
    #: Its private co-watch contributions, for the idle syncs of a TV left plugged in.
    cowatch: Plugged = field(default_factory=Plugged)
    #: Events and syncs the replay has put its brain through: a checkpoint scores it
    #: again only once this moved (``FleetRun.scored``).
    changes: int = 0


@dataclass(slots=True)
class FleetRun:
    viewers: dict[int, Viewer]
    audit: PrivacyAudit | None
    syncs: int = 0
    rounds: int = 0
    released_versions: int = 0
    sync_errors: int = 0
    checkpoints: list[dict[str, float]] = field(default_factory=list)
    #: A TV that never watched anything and syncs once the replay is over: what a new
    #: household's first screen shows from the fleet's release (None without federation).
    newcomer: Viewer | None = None
    #: The co-watch release the TVs contribute to (None: no co-watch knowledge).
    cowatch: CentralRelease | None = None
    #: The coalition's forged co-watch pairs (None: no promote-item attack on co-watch).
    forgery: Forgery | None = None
    #: The most pairs a TV contributes per epoch (``BrainConfig.cowatch_pairs_per_epoch``).
    pairs_per_epoch: int = 0
    #: The private protocol the TVs contribute through (None: not this fleet's source).
    private: PrivateCowatch | None = None
    #: The attackers' forged pairs under the private protocol.
    forged: list[ForgedPairs] = field(default_factory=list)
    #: Co-watch rows the constellation's rounds released (changed), summed over rounds.
    cowatch_rows: int = 0
    #: The constellation's co-watch DP ledger after the replay (``/api/omega/stats``).
    cowatch_dp: dict[str, Any] | None = None
    #: What the newcomer pulled once the replay was over: bytes and syncs.
    newcomer_pull_bytes: int = 0
    newcomer_syncs: int = 0
    #: Where its constellation ran (``SimConstellation.where``; None: local-only).
    constellation: str | None = None
    #: A replay's checkpoints' scores of each viewer, with its ``changes`` then: a
    #: viewer whose training ended scores the same at every later checkpoint.
    scored: dict[int, tuple[int, npt.NDArray[np.float32]]] = field(default_factory=dict)

    def close(self) -> None:
        for viewer in self.viewers.values():
            viewer.brain.close()
        if self.newcomer is not None:
            self.newcomer.brain.close()

    def ended_at(self) -> float:
        """The simulated time the replay ended at: the latest of the viewers' clocks."""
        return max((v.clock.now() for v in self.viewers.values()), default=0.0)

    def first_screen(self, k: int = 10) -> list[str] | None:
        """The titles the newcomer is recommended (None without federation)."""
        if self.newcomer is None:
            return None
        return [r.item_id for r in self.newcomer.brain.recommend(k)]


def _forger(
    helper_key: bytes | None, order: list[str], target_item: str | None
) -> Callable[[], SharedReport] | None:
    """An attacker's source of valid two-server reports of the target (None: no target or
    no helper)."""
    if helper_key is None or target_item is None or target_item not in order:
        return None
    key = X25519PublicKey.from_public_bytes(helper_key)
    position, size = order.index(target_item), len(order)
    return lambda: make_shared_report(position, size, key)


def forgery_of(split: Split, item_ids: list[str], order: list[str], target: str) -> Forgery:
    """The coalition's plan: point the most watched titles (what it can read off any
    public chart; here the train split's counts) at the target, most watched first."""
    counts = np.bincount(split.train_items, minlength=len(item_ids))
    position = {item: i for i, item in enumerate(order)}
    watched = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0]
    sources = [position[item_ids[i]] for i in watched if item_ids[i] != target]
    return Forgery(position[target], sources)


def event_order(split: Split) -> tuple[npt.NDArray[np.int64], ...]:
    viewers = np.repeat(np.arange(split.n_viewers), np.diff(split.train_indptr))
    order = np.lexsort((np.arange(len(viewers)), split.train_timestamps))
    return (
        viewers[order].astype(np.int64),
        split.train_items[order].astype(np.int64),
        split.train_ratings[order].astype(np.float64),
        split.train_timestamps[order].astype(np.int64),
    )


@dataclass(frozen=True, slots=True)
class Attack:
    """What the attackers of a fleet do, and to which cell and title."""

    kind: AttackKind
    cell: int
    item: str | None

    def transport(
        self, honest: Transport, forge_share: Callable[[], SharedReport] | None
    ) -> Transport:
        """An attacker's transport: ``honest`` with every push tampered with."""
        return AttackingTransport(
            honest,
            self.kind,
            target_cell=self.cell,
            target_item=self.item,
            forge_share=forge_share,
        )


def open_fleet(
    dataset: Dataset,
    shared: SharedCatalog,
    *,
    viewers: int,
    root: Path,
    config: FleetConfig,
    constellation: SimConstellation | None,
    attack: Attack | None,
    attackers: frozenset[int],
    helper_key: bytes | None,
    private: PrivateCowatch | None = None,
    forgery: Forgery | None = None,
) -> FleetRun:
    """One brain for each of ``viewers`` (and, with a constellation, its sync client) and,
    with a constellation, a newcomer."""
    settings = brain_config(config)
    run = fleet_run(dataset, config, settings, audited=constellation is not None)
    if constellation is not None and config.cowatch == "central-k3":
        run.cowatch = CentralRelease()
    run.forgery = forgery if run.cowatch is not None else None
    run.private = private if constellation is not None else None
    positioned = helper_key is not None or config.cowatch != "off"
    order = list(shared.catalog.ids) if positioned else []
    for v in range(viewers):
        clock = ManualClock(0.0)
        brain = Brain.open(
            root / f"viewer-{v}", clock=clock, config=settings, shared_catalog=shared
        )
        if order:
            # What ``SyncClient.fetch_codebook`` stores from the codebook document the
            # simulator publishes (the brains already share its centroids).
            CatalogOrder.record(brain, order)
        viewer = Viewer(v, brain, clock, attacker=v in attackers)
        if constellation is not None and run.audit is not None:
            transport: Transport = AuditingTransport(
                constellation.transport, run.audit, viewer=str(v)
            )
            identity = constellation.device(f"tv-{v}")
            cowatch = private_parts(run, viewer, identity, transport, forgery)
            transport = cowatch.transport or transport
            viewer.cowatch.contributor = cowatch.contributor
            release_keys = None  # an honest TV pins the constellation's keys at registration
            if viewer.attacker and attack is not None:
                transport = attack.transport(transport, _forger(helper_key, order, attack.item))
                release_keys = AttackingTransport.release_keys
            viewer.client = SyncClient(
                brain,
                transport,
                max_pull_bytes=config.pull_bytes,
                report_rng=random.Random(config.seed * 1_000_003 + v),
                helper_key=helper_key,
                attestation=identity,
                release_keys=release_keys,
                cowatch=cowatch.contributor,
                cowatch_pairs=cowatch.pairs,
            )
        run.viewers[v] = viewer
    if constellation is not None:
        run.newcomer = new_tv(
            viewers,
            root / "newcomer",
            shared,
            config=config,
            constellation=constellation,
            order=order,
        )
    return run


def fleet_run(
    dataset: Dataset, config: FleetConfig, settings: BrainConfig, *, audited: bool
) -> FleetRun:
    """An empty run of the fleet, with a privacy audit of ``dataset``'s catalog when the
    fleet talks to a constellation (``audited``)."""
    audit = None
    if audited:
        audit = PrivacyAudit.for_catalog(
            (i.item_id for i in dataset.items),
            (i.title for i in dataset.items),
            shared_epsilon=config.shared_epsilon,
        )
    return FleetRun(viewers={}, audit=audit, pairs_per_epoch=settings.cowatch_pairs_per_epoch)


def brain_config(config: FleetConfig) -> BrainConfig:
    """The settings every brain of a fleet runs with."""
    settings = BrainConfig(
        codebook_cells=config.cells,
        report_epsilon=config.report_epsilon,
        report_budget=config.report_budget,
        report_window_s=config.report_window_s,
        shared_epsilon=config.shared_epsilon,
        fsync=config.fsync,
    )
    if config.cowatch == "private":
        settings = dataclasses.replace(settings, cowatch_pairs_per_epoch=config.cowatch_per_epoch)
    if config.cowatch_spread:
        settings = dataclasses.replace(settings, cowatch_spread=config.cowatch_spread)
    return settings


def new_tv(
    index: int,
    directory: Path,
    shared: SharedCatalog,
    *,
    config: FleetConfig,
    constellation: SimConstellation | None,
    name: str = "newcomer",
    order: Sequence[str] = (),
) -> Viewer:
    """A TV that has watched nothing, with a fleet's settings; with a constellation, a sync
    client attested as ``name`` (outside any audit: it is not one of the replayed viewers).
    It joins the fleet's federation with :func:`join`."""
    clock = ManualClock(0.0)
    brain = Brain.open(directory, clock=clock, config=brain_config(config), shared_catalog=shared)
    client = None
    if constellation is not None:
        client = SyncClient(
            brain,
            constellation.transport,
            max_pull_bytes=config.pull_bytes,
            attestation=constellation.device(name),
        )
    if order:  # the server's catalog order, which co-watch rows and reports name titles by
        CatalogOrder.record(brain, order)
    return Viewer(index, brain, clock, client)


async def join(viewer: Viewer, at: float, *, max_syncs: int = 50) -> int:
    """Set ``viewer``'s clock to ``at`` and sync until it holds the whole current release;
    the number of syncs it took."""
    assert viewer.client is not None
    viewer.clock.set(at)
    for n in range(1, max_syncs + 1):
        result = await viewer.client.sync()
        if not result.more:
            return n
    return max_syncs


def private_parts(
    run: FleetRun,
    viewer: Viewer,
    identity: DeviceIdentity,
    transport: Transport,
    forgery: Forgery | None,
) -> TvCowatch:
    """A TV's part in the private co-watch protocol (nothing without it); an attacker
    contributes the coalition's forged pairs."""
    if run.private is None:
        return TvCowatch()
    forged = None
    if viewer.attacker and forgery is not None:
        forged = ForgedPairs(viewer.index, forgery, run.pairs_per_epoch)
        run.forged.append(forged)
    return run.private.tv(viewer.index, viewer.brain, identity, transport, forged=forged)
