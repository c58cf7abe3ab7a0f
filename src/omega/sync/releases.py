"""Which release keys a device trusts, decided without any I/O.

The roots are the keys configured out of band (``SyncClient(release_keys=…)``, ``omega
sync --release-key``) when there are any, else the keys the constellation gave at
registration: configured keys win. A key an answer's endorsement vouches for is trusted
when its endorser is, and stays pinned (``PinnedKey.by`` records the endorser, so a key
learned under one set of roots is not trusted under another).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import msgspec

from omega.errors import ConfigError, SignatureError
from omega.protocol import signing
from omega.protocol.signing import Endorsement

__all__ = [
    "PinnedKey",
    "ReleaseTrust",
    "check_release_keys",
    "pins_from_json",
    "pins_from_key_list",
    "pins_to_json",
]


@dataclass(frozen=True, slots=True)
class PinnedKey:
    """A release key the device keeps: raw Ed25519 ``public``; ``by``: the kid that
    endorsed it, None for a root (given at registration)."""

    public: bytes
    by: str | None = None


def check_release_keys(keys: Mapping[str, bytes]) -> dict[str, bytes]:
    """Configured keys, checked: :class:`ConfigError` naming the bad one."""
    checked: dict[str, bytes] = {}
    for kid, raw in keys.items():
        try:
            signing.check_kid(kid, "release key id")
            signing.check_public_key(raw, f"release key {kid!r}")
        except SignatureError as exc:
            raise ConfigError(str(exc)) from None
        checked[kid] = raw
    return checked


class ReleaseTrust:
    """The keys a device verifies releases with; :meth:`learn` adds endorsed ones."""

    def __init__(
        self, pins: Mapping[str, PinnedKey], *, configured: Mapping[str, bytes] | None = None
    ) -> None:
        self._pins = dict(pins)
        self._roots = (
            dict(configured)
            if configured
            else {kid: pin.public for kid, pin in self._pins.items() if pin.by is None}
        )
        self._keys = self._closure()

    def keys(self) -> dict[str, bytes]:
        """kid → raw public key, for :func:`omega.protocol.signing.verify`."""
        return dict(self._keys)

    def kids(self) -> list[str]:
        """The trusted kids a request names, newest first (kids sort by age), at most
        ``MAX_RELEASE_KEYS``."""
        return sorted(self._keys, reverse=True)[: signing.MAX_RELEASE_KEYS]

    def pins(self) -> dict[str, PinnedKey]:
        """What to store (the configured roots are not: they come from configuration)."""
        return dict(self._pins)

    def learn(self, endorsements: Iterable[Endorsement]) -> bool:
        """Pin the keys of ``endorsements`` (already verified); True if any was new."""
        changed = False
        for e in endorsements:
            if e.kid not in self._keys and e.by in self._keys:
                self._pins[e.kid] = PinnedKey(e.public, e.by)
                changed = True
        if changed:
            self._keys = self._closure()
        return changed

    def _closure(self) -> dict[str, bytes]:
        keys = dict(self._roots)
        grew = True
        while grew:
            grew = False
            for kid, pin in self._pins.items():
                if kid not in keys and pin.by is not None and pin.by in keys:
                    keys[kid] = pin.public
                    grew = True
        return keys


def pins_to_json(pins: Mapping[str, PinnedKey]) -> str:
    return json.dumps(
        {kid: {"key": base64.b64encode(p.public).decode(), "by": p.by} for kid, p in pins.items()},
        sort_keys=True,
    )


def pins_from_json(text: str) -> dict[str, PinnedKey]:
    """Pins as :func:`pins_to_json` stored them; unreadable entries are dropped, so the
    device trusts fewer keys, never more: pins that were stored but leave no key to trust
    are refused (``SyncClient.release_trust``), not replaced by the server's word."""
    try:
        stored = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    pins: dict[str, PinnedKey] = {}
    for kid, entry in stored.items() if isinstance(stored, dict) else ():
        if not isinstance(entry, dict):
            continue
        try:
            raw = base64.b64decode(entry.get("key", ""), validate=True)
        except (TypeError, binascii.Error):
            continue
        by = entry.get("by")
        if len(raw) == signing.KEY_BYTES and (by is None or isinstance(by, str)):
            pins[str(kid)] = PinnedKey(raw, by)
    return pins


class _KeyList(msgspec.Struct, frozen=True):
    """``GET /api/omega/release-keys``: the signing kid, and kid → base64 raw key."""

    signing_kid: str
    keys: dict[str, str]


def pins_from_key_list(body: bytes) -> dict[str, PinnedKey]:
    """The signing key of a ``GET /api/omega/release-keys`` answer, as a root pin."""
    try:
        doc = msgspec.json.decode(body, type=_KeyList)
        raw = base64.b64decode(doc.keys[doc.signing_kid], validate=True)
    except (msgspec.DecodeError, KeyError, binascii.Error) as exc:
        raise SignatureError(f"cannot read the server's release keys: {exc}") from None
    signing.check_kid(doc.signing_kid, "the server's release key id")
    signing.check_public_key(raw, "the server's release key")
    return {doc.signing_kid: PinnedKey(raw)}
