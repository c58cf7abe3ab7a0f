"""Sybil identities: how many an attacker registers, with and without a manufacturer's key.

:func:`sybil_drill` runs against a fresh constellation in this process — the real HTTP
API with attested registration as configured by default, except that the per-address
limit is lifted (an attacker has as many addresses as it needs). It makes ``attempts``
registrations each way an attacker could:

- ``unattested``: no certificate at all;
- ``forged``: certificates signed by the attacker's own key under a trusted maker's name;
- ``copied_certificate``: one genuine TV's certificate, without that TV's device key;
- ``one_device_key``: a genuine TV the attacker owns and extracted the device key of;
- ``leaked_manufacturer_key``: the maker's key itself: a new device per registration,
  until the per-manufacturer limit stops it for the window.

The identities minted with the leaked key then push one pattern, which the next round
releases (they are more than 3 viewers that agree). The operator revokes the key, and
the drill counts what still works: registrations with it, token refreshes of the minted
identities, pushes with the access tokens they still hold, and the pattern at the next
round.

``takeover``: with a maker's leaked key the attacker certifies the serials of that
maker's registered TVs under device keys of its own, to be given their viewers (their
tokens, their place in every count). A device stays bound to the key it registered with,
so the drill counts the viewers taken over (none) and the registrations refused (409).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from omega.constellation.settings import Settings
from omega.protocol import BINARY_MEDIA_TYPE, codec
from omega.protocol.attestation import Manufacturer, registration_payload
from omega.protocol.messages import (
    Attestation,
    Pattern,
    PullRequest,
    PushRequest,
    Registration,
    RegistrationResponse,
    SyncRequest,
    TokenRefresh,
)
from omega.sim.constellation import SimConstellation
from omega.sync.transport import Response

__all__ = ["sybil_drill"]

_FRAME = {"Content-Type": BINARY_MEDIA_TYPE}
_CODEBOOK = "sybil-drill"
_TARGET_CELL = 3
#: Registered TVs whose serials the drill tries to take over.
_TAKEOVER_TARGETS = 100


async def _post(sim: SimConstellation, path: str, message: Any, token: str = "") -> Response:
    headers = {**_FRAME, **({"Authorization": f"Bearer {token}"} if token else {})}
    return await sim.transport.request("POST", path, body=codec.encode(message), headers=headers)


async def _identities(
    sim: SimConstellation, registrations: Iterable[Registration]
) -> list[RegistrationResponse]:
    """Register each; the answers of those accepted (one per viewer id)."""
    accepted: dict[str, RegistrationResponse] = {}
    for registration in registrations:
        answer = await _post(sim, "/api/omega/viewers", registration)
        if answer.status in (200, 201):
            reg = codec.decode(answer.body, expect=RegistrationResponse)
            accepted[reg.viewer_id] = reg
    return list(accepted.values())


def _copied(maker: Manufacturer) -> Registration:
    """A genuine TV's certificate, signed for by a key that is not that TV's."""
    cert = maker.device("victim").certificate
    signed_at = time.time()
    payload = registration_payload(Registration(), signed_at, cert.signature)
    thief = Ed25519PrivateKey.generate().sign(payload)
    return Registration(
        attestation=Attestation(certificate=cert, signed_at=signed_at, signature=thief)
    )


async def _without_key(sim: SimConstellation, attempts: int) -> dict[str, int]:
    """The ways without a manufacturer key, against another trusted maker than the one
    whose key leaks (each maker has a registration budget of its own)."""
    maker = Manufacturer.generate("other-maker", "k1")
    await sim.trust(maker)
    forger = Manufacturer(maker.manufacturer_id, maker.key_id, Ed25519PrivateKey.generate())
    owned = maker.device("owned")
    ways = {
        "unattested": (Registration() for _ in range(attempts)),
        "forged": (forger.device(f"forged-{i}").attest(Registration()) for i in range(attempts)),
        "copied_certificate": (_copied(maker) for _ in range(attempts)),
        "one_device_key": (owned.attest(Registration()) for _ in range(attempts)),
    }
    return {way: len(await _identities(sim, made)) for way, made in ways.items()}


async def _takeover(sim: SimConstellation, targets: int) -> dict[str, int]:
    """Register ``targets`` genuine TVs of a maker, then certify each one's serial under
    the attacker's device key with that maker's (leaked) key."""
    maker = Manufacturer.generate("victim-maker", "k1")
    await sim.trust(maker)
    genuine = await _identities(
        sim, (maker.device(f"tv-{i}").attest(Registration()) for i in range(targets))
    )
    viewers = {reg.viewer_id for reg in genuine}
    statuses: Counter[int] = Counter()
    taken = 0
    for i in range(targets):
        answer = await _post(
            sim, "/api/omega/viewers", maker.device(f"tv-{i}").attest(Registration())
        )
        statuses[answer.status] += 1
        if answer.status in (200, 201):
            taken += codec.decode(answer.body, expect=RegistrationResponse).viewer_id in viewers
    return {"attempts": targets, "viewers_taken_over": taken, "refused": statuses[409]}


async def _mint(sim: SimConstellation, attempts: int) -> tuple[list[RegistrationResponse], int]:
    """Register with the leaked key; the identities made and how many the limit refused."""
    statuses: Counter[int] = Counter()
    minted = []
    for i in range(attempts):
        registration = sim.manufacturer.device(f"sybil-{i}").attest(Registration())
        answer = await _post(sim, "/api/omega/viewers", registration)
        statuses[answer.status] += 1
        if answer.status == 201:
            minted.append(codec.decode(answer.body, expect=RegistrationResponse))
    return minted, statuses[429]


async def _push_target(
    sim: SimConstellation, minted: list[RegistrationResponse], batch: str
) -> int:
    """Each identity pushes the claim with its access token; how many pushes were taken."""
    claim = Pattern(
        id="sybil-claim", task="preference", cells=(_TARGET_CELL,), success_rate=1.0, support=50
    )
    taken = 0
    for n, reg in enumerate(minted):
        push = PushRequest(
            viewer_id=reg.viewer_id, batch_id=f"{batch}{n}", codebook_id=_CODEBOOK, added=[claim]
        )
        request = SyncRequest(pull=PullRequest(viewer_id=reg.viewer_id), push=push)
        taken += (await _post(sim, "/api/omega/sync", request, reg.access_token)).status == 200
    return taken


async def _released(sim: SimConstellation) -> int:
    return int((await sim.run_round()).get("result", {}).get("released", 0))


async def _refreshed(sim: SimConstellation, minted: list[RegistrationResponse]) -> int:
    answers = [
        await _post(sim, "/api/omega/token", TokenRefresh(refresh_token=r.refresh_token))
        for r in minted
    ]
    return sum(1 for a in answers if a.status == 200)


async def sybil_drill(
    root: Path, *, attempts: int = 2000, seed: int = 0, manufacturer_limit: int | None = None
) -> dict[str, Any]:
    """Run the drill (see the module docstring) under ``root``; what each way yielded.
    ``manufacturer_limit``: registrations per manufacturer per window (default: the
    server's default)."""
    default = Settings.model_fields["manufacturer_registration_limit"].default
    limit = int(default if manufacturer_limit is None else manufacturer_limit)
    sim = await SimConstellation.in_process(root, manufacturer_registration_limit=limit)
    started = time.perf_counter()
    try:
        rng = np.random.default_rng(seed)
        await sim.publish_codebook(_CODEBOOK, rng.normal(size=(16, 8)).astype(np.float32))
        identities = await _without_key(sim, attempts)
        # Each attempt counts against the victims' maker until refunded: stay under its limit.
        takeover = await _takeover(sim, min(attempts, limit - 1, _TAKEOVER_TARGETS))
        minted, limited = await _mint(sim, attempts)
        identities["leaked_manufacturer_key"] = len(minted)
        await _push_target(sim, minted, "b")
        before = await _released(sim)
        await sim.revoke(sim.manufacturer)
        after = await _mint(sim, attempts)
        return {
            "attempts_each": attempts,
            "identities": identities,
            "manufacturer_limit": f"{limit} per {Settings.model_fields['rate_window'].default} s",
            "refused_by_manufacturer_limit": limited,
            "released_sybil_patterns": before,
            "takeover": takeover,
            "after_revocation": {
                "identities": len(after[0]),
                "token_refreshes": await _refreshed(sim, minted),
                # with the access tokens they still hold (valid up to ACCESS_TOKEN_TTL)
                "pushes_accepted": await _push_target(sim, minted, "again-"),
                "released_sybil_patterns": await _released(sim),
            },
            "seconds": round(time.perf_counter() - started, 1),
        }
    finally:
        await sim.close()
