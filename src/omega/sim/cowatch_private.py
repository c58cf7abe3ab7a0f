"""``omega simulate --cowatch private``: the fleet contributes co-watch pairs through the
real private protocol (``docs/cowatch.md``) and receives the released rows in its pulls.

Every TV gets a :class:`~omega.sync.cowatch.Contributor` on its sync client: its pairs
go through the in-process helper's co-watch desk (which trusts the simulator's
manufacturer key, as ``omega helper serve --trust-maker`` would) and the constellation's
OPRF, the constellation's rounds recover the pairs that ≥ ``threshold`` distinct TVs
sent, and the released rows reach the brains through ``Brain.apply_cowatch`` in their
ordinary pulls. Nothing here counts or releases anything: the servers do.

**Time.** A replay compresses years into minutes of wall time, and the servers keep
wall-clock epochs, so to them the whole replay is a single epoch: as with the rate
limits the simulator lifts (``SimConstellation.in_process``), their per-epoch bound is
set to the most they accept (:data:`SERVER_BOUND`), a per-TV bound for the whole run.
The bound that shapes what the fleet contributes is the TV's, in simulated time: the
brain hands the sync at most ``per_epoch`` pairs (``BrainConfig.cowatch_pairs_per_epoch``)
per epoch of ``epoch_s`` simulated seconds (the TV reads the epoch length from the
constellation), and each pair costs ``shared_epsilon`` of its report budget.

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

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omega.brain import Brain
from omega.helper import CowatchConfig, CowatchDesk, HelperService
from omega.helper.cowatch import OPRF_KEY_FILE
from omega.protocol.attestation import DeviceIdentity, Manufacturer
from omega.sim.audit_cowatch import CowatchAudit, CowatchAuditTransport
from omega.sim.cowatch_release import Forgery
from omega.sync.cowatch import Contributor, CowatchPairs
from omega.sync.transport import HttpTransport, Response, Transport

__all__ = [
    "SERVER_BOUND",
    "ForgedPairs",
    "PrivateCowatch",
    "RecordedPairs",
    "TvCowatch",
    "cowatch_desk",
]

#: Both servers' per-TV bound in the replay (their epochs are wall-clock: the whole run).
SERVER_BOUND = 1_000


def cowatch_desk(
    directory: Path, service: HelperService, maker: Manufacturer, *, min_batch: int
) -> CowatchDesk:
    """The helper's co-watch desk, trusting the simulator's manufacturer."""
    config = CowatchConfig(
        per_epoch=SERVER_BOUND,
        min_batch=min_batch,
        manufacturer_keys={(maker.manufacturer_id, maker.key_id): maker.key.public_key()},
    )
    return CowatchDesk(directory, service.secret, config)


@dataclass(slots=True)
class RecordedPairs:
    """The brain's pairs, recorded for the audit as the sync takes them."""

    brain: Brain
    sent: list[tuple[int, int]]

    def pairs_to_contribute(self, epoch: int, limit: int) -> list[tuple[int, int]]:
        pairs = self.brain.pairs_to_contribute(epoch, limit)
        self.sent.extend(p for p in pairs if p not in self.sent)
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
    #: What one contributed pair costs a TV's report budget (None: ``shared_epsilon``).
    epsilon: float | None = None
    #: The epoch the TVs contribute in (simulated seconds; the constellation's setting).
    epoch_s: float = 7 * 86_400.0

    def epoch_of(self, at: float) -> int:
        """The co-watch epoch a TV's clock at ``at`` is in."""
        return int(at // self.epoch_s)

    @classmethod
    def open(
        cls, helper_url: str, helper_dir: Path, *, epsilon: float | None = None
    ) -> PrivateCowatch:
        """For the helper serving at ``helper_url`` from ``helper_dir`` (whose keys the
        audit uses to try to read what TVs sent); ``epsilon``: a pair's cost."""
        audit = CowatchAudit(
            helper_key=HelperService.open(helper_dir).private_key,
            helper_oprf_key=(helper_dir / OPRF_KEY_FILE).read_bytes(),
        )
        return cls(HttpTransport(helper_url), audit, epsilon=epsilon)

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
