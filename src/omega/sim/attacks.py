"""Byzantine viewers for the simulator: honest brains whose pushes are tampered in flight.

An attacker's device learns from its own history like any other, then a transport
rewrites what it pushes. The rewrite is deterministic, so a retried batch keeps its
digest (the server's idempotency check sees the same bytes).

Attackers here are genuine TVs: the simulator's manufacturer attests every TV, theirs
included, and each is one identity. Identities minted beyond that — with a leaked
manufacturer key, until it is revoked — are what ``omega.sim.sybil`` measures.

The server seals its answer to the rewritten request, which the attacker's own sync
client would refuse as an answer to another request; so the attacker's transport seals
each answer again with its own key, the one key its client pins
(:attr:`AttackingTransport.release_keys`): an attacker controls its own device, not the
answers other devices accept.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from typing import ClassVar, Literal

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from omega.protocol import BINARY_MEDIA_TYPE, MAX_REPORTS_PER_PUSH, MAX_SHARES_PER_PUSH, signing
from omega.protocol.codec import decode, encode
from omega.protocol.frequency import PRIME, bucket_count, hash_item, seed_params
from omega.protocol.messages import (
    FrequencyReport,
    Pattern,
    PatternContext,
    PushRequest,
    SharedReport,
    SyncRequest,
    TaskType,
)
from omega.sync.transport import Response, Transport

__all__ = ["ATTACKS", "AttackKind", "AttackingTransport", "tamper"]

AttackKind = Literal["sign-flip", "scale", "constant", "promote-item"]
ATTACKS: tuple[AttackKind, ...] = ("sign-flip", "scale", "constant", "promote-item")
_MAX_PATTERNS = 512
_MAX_REPORTS = MAX_REPORTS_PER_PUSH
#: The key attackers seal their own answers with (fixed: a run must reproduce).
_ATTACKER_KID = "sim-attacker"
_ATTACKER_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"omega-sim-attacker").digest())


def _pid(*parts: object) -> str:
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).hexdigest()


def _promotion(viewer: str, push: PushRequest, target: int) -> list[Pattern]:
    """High-success patterns pointing at the target cell from every cell the attacker has."""
    sources = sorted({p.cells[0] for p in (*push.added, *push.updated)} - {target})[:40]
    claims: list[tuple[TaskType, tuple[int, ...], str]] = [
        ("preference", (target,), _pid(viewer, "pref", target)),
        ("discovery", (target,), _pid(viewer, "disc", target)),
    ]
    claims += [
        ("recommendation", (src, target), _pid(viewer, "rec", src, target)) for src in sources
    ]
    return [
        Pattern(id=pid, task=task, cells=cells, success_rate=1.0, support=50)
        for task, cells, pid in claims
    ]


def _forged_reports(push: PushRequest, target_item: str) -> list[FrequencyReport]:
    """As many popularity reports as a push may carry, every one naming the target (no
    randomisation): the strongest poisoning a device can do to the LDP estimate."""
    epsilon = push.reports[0].epsilon if push.reports else 8.0
    buckets = bucket_count(epsilon)
    target = hash_item(target_item)
    forged = []
    for n in range(_MAX_REPORTS):
        seed = (
            int.from_bytes(
                hashlib.blake2b(f"{push.batch_id}|{n}".encode(), digest_size=8).digest(), "little"
            )
            >> 1
        )
        a, b = seed_params(seed)
        value = ((a * target + b) % PRIME) % buckets
        forged.append(FrequencyReport(seed=seed, value=value, buckets=buckets, epsilon=epsilon))
    return forged


def tamper(
    push: PushRequest,
    kind: AttackKind,
    *,
    target_cell: int,
    target_item: str | None = None,
    forge_share: Callable[[], SharedReport] | None = None,
) -> PushRequest:
    """The push an attacking device sends instead of ``push``. For ``promote-item`` with
    ``forge_share`` (two-server reports): a valid report of the target in every push,
    whatever the device's budget — the most a device can get counted."""

    def each(p: Pattern) -> Pattern:
        if kind == "sign-flip":
            return msgspec.structs.replace(p, success_rate=round(1.0 - p.success_rate, 4))
        if kind == "scale":
            return msgspec.structs.replace(p, support=min(p.support * 100, 1_000_000))
        return p

    if kind == "constant":
        fixed = [
            Pattern(
                id=_pid(push.viewer_id, "const", 0),
                task="preference",
                cells=(0,),
                success_rate=1.0,
                support=10,
                context=PatternContext(),
            ),
            Pattern(
                id=_pid(push.viewer_id, "const", 1),
                task="recommendation",
                cells=(0, 1),
                success_rate=1.0,
                support=10,
            ),
        ]
        return msgspec.structs.replace(push, added=fixed, updated=[])
    if kind == "promote-item":
        extra = _promotion(push.viewer_id, push, target_cell)
        taken = {p.id for p in extra}
        honest = [p for p in push.added if p.id not in taken]
        room = max(0, _MAX_PATTERNS - len(extra) - len(push.updated) - len(push.removed))
        if forge_share is not None:  # the server counts two-server reports: forge those
            reports, shares = [], [forge_share() for _ in range(MAX_SHARES_PER_PUSH)]
        else:
            reports = _forged_reports(push, target_item) if target_item else push.reports
            shares = push.shares
        return msgspec.structs.replace(
            push, added=extra + honest[:room], reports=reports, shares=shares
        )
    return msgspec.structs.replace(
        push, added=[each(p) for p in push.added], updated=[each(p) for p in push.updated]
    )


class AttackingTransport:
    """Rewrites the push inside every binary sync request this device sends, and seals
    the answers again for the original request with the attacker's own key."""

    #: What the attacker's sync client pins (``SyncClient(release_keys=…)``).
    release_keys: ClassVar[Mapping[str, bytes]] = {
        _ATTACKER_KID: signing.public_bytes(_ATTACKER_KEY)
    }

    def __init__(
        self,
        inner: Transport,
        kind: AttackKind,
        *,
        target_cell: int,
        target_item: str | None,
        forge_share: Callable[[], SharedReport] | None = None,
    ) -> None:
        self.inner = inner
        self.kind = kind
        self.target_cell = target_cell
        self.target_item = target_item
        self.forge_share = forge_share

    async def request(
        self, method: str, path: str, *, body: bytes | None, headers: Mapping[str, str]
    ) -> Response:
        if not body or not path.endswith("/sync"):
            return await self.inner.request(method, path, body=body, headers=headers)
        original, message = body, decode(body, expect=SyncRequest)
        if message.push is not None:
            pushed = tamper(
                message.push,
                self.kind,
                target_cell=self.target_cell,
                target_item=self.target_item,
                forge_share=self.forge_share,
            )
            body = encode(msgspec.structs.replace(message, push=pushed))
        answer = await self.inner.request(method, path, body=body, headers=headers)
        if answer.status != 200 or answer.header("content-type") != BINARY_MEDIA_TYPE:
            return answer
        resealed = signing.seal(
            signing.unseal(answer.body),
            request=signing.request_digest(original),
            kid=_ATTACKER_KID,
            key=_ATTACKER_KEY,
        )
        return dataclasses.replace(answer, body=resealed)

    async def aclose(self) -> None:
        """Shared inner transport: closed by its owner."""
