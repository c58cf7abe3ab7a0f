"""``omega simulate --cowatch private``: the fleet contributes co-watch pairs through the
real private protocol (``docs/cowatch.md``) and receives the released rows in its pulls.

Every TV gets a :class:`~omega.sync.cowatch.Contributor` on its sync client: its pairs
go through the in-process helper's co-watch desk (which trusts the simulator's
manufacturer key, as ``omega helper serve --trust-maker`` would) and the constellation's
OPRF, the constellation's rounds recover the pairs that ≥ ``threshold`` distinct TVs
sent, and the released rows reach the brains through ``Brain.apply_cowatch`` in their
ordinary pulls. Nothing here counts or releases anything: the servers do.

**Time.** A replay compresses years into minutes of wall time. A deployment's servers
count each TV's co-watch requests per epoch of their clock; here both servers' epochs
follow the replay's clock (:attr:`PrivateCowatch.clock`, the simulated time of the sync
being served: :class:`ReplayDesk` for the helper, ``cowatch_clock`` for the
constellation), so each charges a TV its ``per_epoch`` bound per simulated epoch, as it
would per real one (device proofs and certificates stay on the wall clock: they are about
the request, not the bound). The brain hands the sync at most ``per_epoch`` pairs
(``BrainConfig.cowatch_pairs_per_epoch``) per epoch of ``epoch_s`` simulated seconds (the
TV reads the epoch length from the constellation), and each pair costs ``epsilon`` of its
report budget. (Until this session the servers saw the whole replay as one wall-clock
epoch, so their bound, 1,000 reports, was a bound for the whole run, and TVs past it lost
their later epochs' pairs.)

**Audit.** Each TV's co-watch requests go through a
:class:`~omega.sim.audit_cowatch.CowatchAuditTransport` in front of either server, and
the pairs its brain handed the sync are recorded (:class:`RecordedPairs`), so
:meth:`PrivateCowatch.summary` reports the audit's three counts and the requests' sizes.

**Attack.** A promote-item attacker's sync contributes :class:`ForgedPairs` (popular
titles → its target) through the same Contributor, under the same bounds.

**Reproducibility.** The protocol's randomness (OPRF blinding, the points' x, HPKE,
the servers' keys, the helper's shuffle) changes no released pair or count, so a seed
gives one set of figures without seeding any of it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omega.brain import Brain
from omega.clock import Clock, ManualClock
from omega.helper import CowatchConfig, CowatchDesk, HelperService
from omega.helper.cowatch import OPRF_KEY_FILE
from omega.protocol.attestation import DeviceIdentity, Manufacturer
from omega.sim.audit_cowatch import CowatchAudit, CowatchAuditTransport
from omega.sim.cowatch_release import Forgery
from omega.sync.cowatch import Contributor, CowatchPairs, contributed
from omega.sync.transport import Response, Transport

__all__ = [
    "ForgedPairs",
    "Plugged",
    "PrivateCowatch",
    "RecordedPairs",
    "ReplayDesk",
    "TvCowatch",
    "cowatch_desk",
]


class ReplayDesk(CowatchDesk):
    """The helper's co-watch desk with its epochs on the replay's clock ``replay``."""

    def __init__(self, data_dir: Path, secret: bytes, config: CowatchConfig, replay: Clock) -> None:
        super().__init__(data_dir, secret, config)
        self.replay = replay

    def epoch(self) -> int:
        return int(self.replay.now() // self.config.epoch_s)


def cowatch_desk(
    directory: Path,
    service: HelperService,
    maker: Manufacturer,
    *,
    min_batch: int,
    per_epoch: int,
    epoch_s: float,
    replay: Clock,
) -> CowatchDesk:
    """The helper's co-watch desk, trusting the simulator's manufacturer, charging each
    TV at most ``per_epoch`` per epoch of ``epoch_s`` on the ``replay`` clock."""
    config = CowatchConfig(
        per_epoch=per_epoch,
        epoch_s=epoch_s,
        min_batch=min_batch,
        manufacturer_keys={(maker.manufacturer_id, maker.key_id): maker.key.public_key()},
    )
    return ReplayDesk(directory, service.secret, config, replay)


@dataclass(slots=True)
class RecordedPairs:
    """The brain's pairs, recorded for the audit as the sync takes them."""

    brain: Brain
    sent: list[tuple[int, int]]
    #: ``sent`` as a set: a TV sends thousands of pairs.
    _known: set[tuple[int, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._known.update(self.sent)

    def pairs_to_contribute(self, epoch: int, limit: int) -> list[tuple[int, int]]:
        pairs = self.brain.pairs_to_contribute(epoch, limit)
        for pair in pairs:
            if pair not in self._known:
                self._known.add(pair)
                self.sent.append(pair)
        return pairs


@dataclass(slots=True)
class ForgedPairs:
    """An attacking TV's epoch: the next ``per_epoch`` forged pairs (source → target) it
    has not sent, the most watched sources first."""

    tv: int
    attack: Forgery
    per_epoch: int
    _epochs: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    def pairs_to_contribute(self, epoch: int, limit: int) -> list[tuple[int, int]]:
        if epoch not in self._epochs:  # a retried epoch asks again: the same pairs
            done = self.attack.sent.setdefault(self.tv, 0)
            sources = self.attack.sources[done : done + min(limit, self.per_epoch)]
            self.attack.sent[self.tv] = done + len(sources)
            self._epochs[epoch] = [(s, self.attack.target) for s in sources]
        return self._epochs[epoch]


@dataclass(slots=True)
class Plugged:
    """A replayed TV's contributions, for the idle syncs of a TV left plugged in: it
    syncs at the replay's weekly ticks while it may hold pairs, once the epoch of its
    last contribution is over and its budget pays for a pair."""

    contributor: Contributor | None = None
    #: The epoch of its last contribution (None: none yet).
    epoch: int | None = None
    #: It may hold pairs it has not contributed: set by every new event, cleared by a
    #: sync that could have sent pairs (epoch and budget allowing) and found none.
    pending: bool = False
    #: Its budget pays for no pair before this simulated time.
    wait: float = -math.inf

    def after(self, brain: Brain, epoch: int, now: float, sent: int) -> None:
        """What a sync at ``now`` (in ``epoch``) that contributed ``sent`` pairs says: it
        sent some (it may hold more), it had contributed earlier this epoch, its budget
        pays for none until it renews, or it holds none it can send (until it watches
        more)."""
        if sent or contributed(brain, epoch):
            self.epoch = epoch  # sent now, or in this epoch or a later one, or refused
        elif self.contributor is not None and not self.contributor.affordable(brain, 1, now):
            self.wait = self.contributor.renews_at(brain, now)
        else:
            self.pending = False

    def due(self, epoch: int, at: float) -> bool:
        """An idle sync in ``epoch`` at simulated ``at`` may contribute."""
        return self.pending and epoch != self.epoch and self.wait <= at


@dataclass(frozen=True, slots=True)
class TvCowatch:
    """What a TV's sync client needs for co-watch (all None: no co-watch)."""

    transport: Transport | None = None
    contributor: Contributor | None = None
    pairs: CowatchPairs | None = None


@dataclass(slots=True)
class PrivateCowatch:
    """The fleet's handle on the private protocol: one transport to the helper for every
    TV, the audit, and what each TV contributed."""

    helper: Transport
    audit: CowatchAudit
    attempts: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    #: The largest answer body the constellation sent any TV (``/sync`` included).
    largest_answer: int = 0
    #: What one contributed pair costs a TV's report budget (None: the brain's
    #: ``cowatch_epsilon``; the replay passes its own, or ``shared_epsilon`` for 0).
    epsilon: float | None = None
    #: The epoch the TVs contribute in (simulated seconds; the constellation's setting).
    epoch_s: float = 7 * 86_400.0
    #: The replay's clock both servers' co-watch epochs follow: the simulated time of
    #: the latest sync (:meth:`at`).
    clock: ManualClock = field(default_factory=lambda: ManualClock(0.0))

    def at(self, now: float) -> None:
        """A TV syncs at simulated ``now``: the servers' epoch clock moves there (never
        back: the replay's syncs run in time order, the last catch-up ones aside)."""
        self.clock.set(max(self.clock.now(), now))

    def epoch_of(self, at: float) -> int:
        """The co-watch epoch a TV's clock at ``at`` is in."""
        return int(at // self.epoch_s)

    @classmethod
    def open(
        cls,
        helper: Transport,
        helper_dir: Path,
        *,
        epsilon: float | None = None,
        clock: ManualClock | None = None,
    ) -> PrivateCowatch:
        """For the helper reached through ``helper`` (closed with this handle), serving
        from ``helper_dir`` (whose keys the audit uses to try to read what TVs sent);
        ``epsilon``: a pair's cost; ``clock``: the replay clock the servers' epochs
        follow."""
        audit = CowatchAudit(
            helper_key=HelperService.open(helper_dir).private_key,
            helper_oprf_key=(helper_dir / OPRF_KEY_FILE).read_bytes(),
        )
        found = cls(helper, audit, epsilon=epsilon)
        if clock is not None:
            found.clock = clock
        return found

    def tv(
        self,
        tv: int,
        brain: Brain,
        identity: DeviceIdentity,
        leader: Transport,
        *,
        forged: ForgedPairs | None = None,
    ) -> TvCowatch:
        """A TV's audited transport to the constellation, its Contributor (through an
        audited transport to the helper) and its pairs: the brain's, recorded for the
        audit, or ``forged`` ones."""
        name = str(tv)
        helper = CowatchAuditTransport(self.helper, self.audit, tv=name, server="helper")
        audited = _Measured(
            CowatchAuditTransport(leader, self.audit, tv=name, server="leader"), self
        )
        pairs: CowatchPairs = forged or RecordedPairs(brain, self.audit.pairs.setdefault(name, []))
        contributor = Contributor(helper=helper, identity=identity, epsilon=self.epsilon)
        return TvCowatch(audited, contributor, pairs)

    def note(self, error: str | None) -> None:
        """A sync's contribution outcome (``SyncResult.cowatch_error``)."""
        self.attempts += 1
        if error:
            key = error.split(":")[0][:80]
            self.errors[key] = self.errors.get(key, 0) + 1

    def summary(self, forged: list[ForgedPairs]) -> dict[str, Any]:
        """The audit's counts, the co-watch requests' sizes, and what was contributed."""
        sizes = {
            server: [len(b) for bodies in sent.values() for b in bodies]
            for server, sent in (("helper", self.audit.to_helper), ("leader", self.audit.to_leader))
        }
        return {
            **self.audit.summary(),
            "pairs_contributed": sum(len(p) for p in self.audit.pairs.values()),
            "pairs_forged": sum(a.attack.sent.get(a.tv, 0) for a in forged),
            "contribution_errors": dict(self.errors),
            "largest_answer_bytes": self.largest_answer,
            **{f"requests_to_{server}": len(found) for server, found in sizes.items()},
            **{
                f"request_bytes_to_{server}_{what}": float(fn(found)) if found else 0.0
                for server, found in sizes.items()
                for what, fn in (("median", statistics.median), ("max", max))
            },
        }

    async def close(self) -> None:
        await self.helper.aclose()


class _Measured:
    """Notes the size of every answer the constellation sends a TV."""

    def __init__(self, inner: Transport, into: PrivateCowatch) -> None:
        self.inner = inner
        self.into = into

    async def request(
        self, method: str, path: str, *, body: bytes | None, headers: Mapping[str, str]
    ) -> Response:
        answer = await self.inner.request(method, path, body=body, headers=headers)
        self.into.largest_answer = max(self.into.largest_answer, len(answer.body))
        return answer

    async def aclose(self) -> None:
        """The inner transport is its opener's to close."""
