"""Constellation storage: one interface, SQLite and PostgreSQL backends chosen by URL."""

from __future__ import annotations

from omega.storage.base import (
    Codebook,
    LivePattern,
    ReleaseDelta,
    Storage,
    StorageStats,
    ViewerRecord,
)
from omega.storage.factory import check_storage_url, open_storage
from omega.storage.postgres import PostgresStorage
from omega.storage.sqlite import SQLiteStorage

__all__ = [
    "Codebook",
    "LivePattern",
    "PostgresStorage",
    "ReleaseDelta",
    "SQLiteStorage",
    "Storage",
    "StorageStats",
    "ViewerRecord",
    "check_storage_url",
    "open_storage",
]
