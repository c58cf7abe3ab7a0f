"""Constellation storage: one interface, SQLite and PostgreSQL backends chosen by URL."""

from __future__ import annotations

from omega.storage.base import (
    AttestedDevice,
    Codebook,
    LivePattern,
    ManufacturerKey,
    ReleaseDelta,
    Storage,
    StorageLoad,
    StorageStats,
    ViewerRecord,
)
from omega.storage.factory import check_storage_url, open_storage
from omega.storage.postgres import PostgresStorage
from omega.storage.sqlite import SQLiteStorage

__all__ = [
    "AttestedDevice",
    "Codebook",
    "LivePattern",
    "ManufacturerKey",
    "PostgresStorage",
    "ReleaseDelta",
    "SQLiteStorage",
    "Storage",
    "StorageLoad",
    "StorageStats",
    "ViewerRecord",
    "check_storage_url",
    "open_storage",
]
