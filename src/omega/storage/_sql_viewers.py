"""Viewers' and attested devices' SQL, run inside the caller's transaction: the manufacturer
keys the operator trusts, and which device each attested viewer is."""

from __future__ import annotations

from typing import Any

from omega.errors import ConflictError
from omega.storage._sql import Tx
from omega.storage.base import AttestedDevice, ManufacturerKey, ViewerRecord

__all__ = [
    "Raced",
    "add_key",
    "get_key",
    "insert_viewer",
    "keys",
    "list_viewers",
    "register_device",
    "rekey_device",
    "revoke_key",
    "revoke_viewer",
    "revoked_key_of",
    "revoked_viewers",
    "viewer",
]

_KEY_COLUMNS = "k.manufacturer_id, k.key_id, k.public_key, k.created_at, k.revoked_at"
_DEVICES_OF_KEY = (
    "(SELECT count(*) FROM devices d"
    " WHERE d.manufacturer_id = k.manufacturer_id AND d.key_id = k.key_id)"
)
_DEVICE = "SELECT viewer_id, device_key FROM devices WHERE manufacturer_id = ? AND device_id = ?"
_REVOKED = (
    "devices d JOIN manufacturer_keys k"
    " ON k.manufacturer_id = d.manufacturer_id AND k.key_id = d.key_id"
    " WHERE k.revoked_at IS NOT NULL"
)


_VIEWER_COLUMNS = "viewer_id, region, device_model, created_at, client_version, revoked_at"


class Raced(Exception):
    """Another transaction registered the same new device first (raised to roll back)."""


def insert_viewer(tx: Tx, viewer: ViewerRecord) -> int:
    """Insert ``viewer`` unless its id exists; how many rows were inserted."""
    return tx.run(
        "INSERT INTO viewers (viewer_id, region, device_model, client_version, created_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (viewer_id) DO NOTHING",
        (
            viewer.viewer_id,
            viewer.region,
            viewer.device_model,
            viewer.client_version,
            viewer.created_at,
        ),
    )


def viewer(tx: Tx, viewer_id: str) -> ViewerRecord | None:
    row = tx.row(f"SELECT {_VIEWER_COLUMNS} FROM viewers WHERE viewer_id = ?", (viewer_id,))
    return None if row is None else ViewerRecord(*row)


def list_viewers(tx: Tx, after: str, limit: int) -> list[ViewerRecord]:
    rows = tx.rows(
        f"SELECT {_VIEWER_COLUMNS} FROM viewers WHERE viewer_id > ? ORDER BY viewer_id LIMIT ?",
        (after, limit),
    )
    return [ViewerRecord(*row) for row in rows]


def revoke_viewer(tx: Tx, viewer_id: str, now: float) -> ViewerRecord | None:
    tx.run(
        "UPDATE viewers SET revoked_at = ? WHERE viewer_id = ? AND revoked_at IS NULL",
        (now, viewer_id),
    )
    return viewer(tx, viewer_id)


def _key(row: tuple[Any, ...]) -> ManufacturerKey:
    devices = int(row[5]) if len(row) > 5 else 0
    return ManufacturerKey(row[0], row[1], bytes(row[2]), row[3], row[4], devices)


def add_key(tx: Tx, key: ManufacturerKey) -> bool:
    if tx.run(
        "INSERT INTO manufacturer_keys (manufacturer_id, key_id, public_key, created_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (manufacturer_id, key_id) DO NOTHING",
        (key.manufacturer_id, key.key_id, key.public_key, key.created_at),
    ):
        return True
    found = get_key(tx, key.manufacturer_id, key.key_id)
    assert found is not None  # the insert conflicted with it
    name = f"manufacturer key {key.manufacturer_id}/{key.key_id}"
    if found.public_key != key.public_key:
        raise ConflictError(f"{name} is already registered with another public key")
    if found.revoked_at is not None:
        raise ConflictError(f"{name} was revoked and stays revoked; register a new key id")
    return False


def get_key(tx: Tx, manufacturer_id: str, key_id: str) -> ManufacturerKey | None:
    row = tx.row(
        f"SELECT {_KEY_COLUMNS}, {_DEVICES_OF_KEY} FROM manufacturer_keys k"
        " WHERE k.manufacturer_id = ? AND k.key_id = ?",
        (manufacturer_id, key_id),
    )
    return None if row is None else _key(row)


def keys(tx: Tx) -> list[ManufacturerKey]:
    rows = tx.rows(
        f"SELECT {_KEY_COLUMNS}, {_DEVICES_OF_KEY} FROM manufacturer_keys k"
        " ORDER BY k.manufacturer_id, k.key_id"
    )
    return [_key(r) for r in rows]


def revoke_key(tx: Tx, manufacturer_id: str, key_id: str, now: float) -> ManufacturerKey | None:
    tx.run(
        "UPDATE manufacturer_keys SET revoked_at = ?"
        " WHERE manufacturer_id = ? AND key_id = ? AND revoked_at IS NULL",
        (now, manufacturer_id, key_id),
    )
    return get_key(tx, manufacturer_id, key_id)


def register_device(tx: Tx, device: AttestedDevice, viewer: ViewerRecord) -> str | None:
    """See ``Storage.register_device``; raises :class:`Raced` if a concurrent transaction
    registered the same new device (the caller retries: it then finds the row)."""
    where = (device.manufacturer_id, device.device_id)
    row = tx.row(_DEVICE, where)
    if row is not None:
        _check_device_key(device, row[1])
        # Conditional, so that of two concurrent registrations one waits for the other's
        # row lock (PostgreSQL) and then finds signed_at no longer older, or (after a
        # re-key) the other's device key recorded.
        moved = tx.run(
            "UPDATE devices SET key_id = ?, signed_at = ?, device_key = ?"
            " WHERE manufacturer_id = ? AND device_id = ? AND signed_at < ?"
            " AND (device_key IS NULL OR device_key = ?)",
            (
                device.key_id,
                device.signed_at,
                device.device_key,
                *where,
                device.signed_at,
                device.device_key,
            ),
        )
        if not moved:
            _check_device_key(device, tx.one(_DEVICE, where)[1])
            return None
        return str(row[0])
    insert_viewer(tx, viewer)
    if not tx.run(
        "INSERT INTO devices (manufacturer_id, device_id, key_id, viewer_id, signed_at,"
        " registered_at, device_key) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (manufacturer_id, device_id) DO NOTHING",
        (
            *where,
            device.key_id,
            viewer.viewer_id,
            device.signed_at,
            viewer.created_at,
            device.device_key,
        ),
    ):
        raise Raced
    return viewer.viewer_id


def _check_device_key(device: AttestedDevice, stored: bytes | None) -> None:
    if stored is not None and bytes(stored) != device.device_key:
        raise ConflictError(
            f"device {device.device_id!r} of manufacturer {device.manufacturer_id!r} is "
            "registered with another device key, and a certificate for its serial under a "
            "new key does not take over its viewer; if this TV's key really changed, the "
            f"operator re-keys it (omega admin devices rekey {device.manufacturer_id} "
            f"{device.device_id})"
        )


def rekey_device(tx: Tx, manufacturer_id: str, device_id: str) -> str | None:
    where = (manufacturer_id, device_id)
    row = tx.row(_DEVICE, where)
    if row is None:
        return None
    tx.run(
        "UPDATE devices SET device_key = NULL WHERE manufacturer_id = ? AND device_id = ?", where
    )
    return str(row[0])


def revoked_viewers(tx: Tx) -> frozenset[str]:
    by_key = tx.rows(f"SELECT d.viewer_id FROM {_REVOKED}")
    by_operator = tx.rows("SELECT viewer_id FROM viewers WHERE revoked_at IS NOT NULL")
    return frozenset(r[0] for r in [*by_key, *by_operator])


def revoked_key_of(tx: Tx, viewer_id: str) -> ManufacturerKey | None:
    row = tx.row(f"SELECT {_KEY_COLUMNS} FROM {_REVOKED} AND d.viewer_id = ?", (viewer_id,))
    return None if row is None else _key(row)
