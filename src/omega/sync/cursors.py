"""What the sync client keeps in the brain's sync cursors: identity, release keys,
codebook name, catalog order.

Viewer id, access token, rotating refresh token and the release keys pinned at
registration are written in one durable transaction (``brain.sync.set_cursors``), so a
crash never leaves half a pair, nor credentials without their pins. So is the mapping
from the server's codebook name to the brain's own codebook id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from omega.brain import Brain
from omega.brain.sync_state import CATALOG_ORDER_CURSOR
from omega.sync.releases import PinnedKey, pins_from_json, pins_to_json

__all__ = [
    "CatalogOrder",
    "CodebookLabel",
    "Credentials",
    "ReleasePins",
    "load_credentials",
    "save_credentials",
]

_VIEWER, _ACCESS, _REFRESH = "sync.viewer_id", "sync.access_token", "sync.refresh_token"
_CB_SERVER, _CB_LOCAL = "sync.codebook_server_id", "sync.codebook_local_id"
_CB_SEQUENCE = "sync.codebook_sequence"
_CATALOG = CATALOG_ORDER_CURSOR
_RELEASE_KEYS = "sync.release_keys"


@dataclass(frozen=True, slots=True)
class Credentials:
    viewer_id: str
    access_token: str
    refresh_token: str

    def __repr__(self) -> str:  # never print tokens
        return f"Credentials(viewer_id={self.viewer_id!r})"


def load_credentials(brain: Brain) -> Credentials | None:
    values = [brain.sync.cursor(name) for name in (_VIEWER, _ACCESS, _REFRESH)]
    return Credentials(*values) if all(values) else None


def save_credentials(
    brain: Brain, credentials: Credentials, *, release_keys: Mapping[str, PinnedKey] | None = None
) -> None:
    """Store ``credentials`` (and, at registration, the ``release_keys`` to pin) at once."""
    values = {
        _VIEWER: credentials.viewer_id,
        _ACCESS: credentials.access_token,
        _REFRESH: credentials.refresh_token,
    }
    if release_keys is not None:
        values[_RELEASE_KEYS] = pins_to_json(release_keys)
    brain.sync.set_cursors(values)


class ReleasePins:
    """The release keys this device pinned (see ``omega.sync.releases``)."""

    @staticmethod
    def load(brain: Brain) -> dict[str, PinnedKey]:
        return pins_from_json(brain.sync.cursor(_RELEASE_KEYS))

    @staticmethod
    def stored(brain: Brain) -> bool:
        """Whether pins were ever stored (readable or not): False only for credentials
        from before releases were signed."""
        return bool(brain.sync.cursor(_RELEASE_KEYS))

    @staticmethod
    def save(brain: Brain, pins: Mapping[str, PinnedKey]) -> None:
        brain.sync.set_cursors({_RELEASE_KEYS: pins_to_json(pins)})


class CodebookLabel:
    """The name pushes carry for the brain's codebook: the server's name for it when the
    brain adopted the server's codebook, else the brain's own id."""

    @staticmethod
    def current(brain: Brain) -> str:
        server = brain.sync.cursor(_CB_SERVER)
        local = brain.sync.cursor(_CB_LOCAL)
        if server and local and local == brain.codebook_id:
            return server
        return brain.codebook_id

    @staticmethod
    def adopted(brain: Brain, server_id: str) -> bool:
        """Whether the brain already holds the server's codebook ``server_id``."""
        return CodebookLabel.current(brain) == server_id and bool(brain.codebook_id)

    @staticmethod
    def record(brain: Brain, server_id: str, sequence: int) -> None:
        brain.sync.set_cursors(
            {_CB_SERVER: server_id, _CB_LOCAL: brain.codebook_id, _CB_SEQUENCE: str(sequence)}
        )

    @staticmethod
    def server_id(brain: Brain) -> str:
        """The server's name of the codebook last adopted ("" if none)."""
        return brain.sync.cursor(_CB_SERVER)

    @staticmethod
    def sequence(brain: Brain) -> int:
        """The sequence of the newest codebook this brain adopted from the server (0: none
        yet, or adopted before codebooks carried one): an older one is refused."""
        stored = brain.sync.cursor(_CB_SEQUENCE)
        return int(stored) if stored.isdigit() else 0

    @staticmethod
    def record_sequence(brain: Brain, sequence: int) -> None:
        brain.sync.set_cursors({_CB_SEQUENCE: str(sequence)})


class CatalogOrder:
    """The server's catalog order (the codebook document's ``item_ids``): a two-server
    report names a title by its position in it."""

    @staticmethod
    def same(brain: Brain, item_ids: Sequence[str]) -> bool:
        """Whether the stored order is ``item_ids`` (a republished catalog may differ)."""
        return brain.sync.cursor(_CATALOG) == json.dumps(list(item_ids))

    @staticmethod
    def record(brain: Brain, item_ids: Sequence[str]) -> None:
        brain.sync.set_cursors({_CATALOG: json.dumps(list(item_ids))})

    @staticmethod
    def positions(brain: Brain) -> dict[str, int]:
        """Item id → position; empty when the server published no catalog."""
        stored = brain.sync.cursor(_CATALOG)
        try:
            ids = json.loads(stored) if stored else []
        except json.JSONDecodeError:
            return {}
        return {str(item): i for i, item in enumerate(ids)} if isinstance(ids, list) else {}
