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

__all__ = ["Codebook", "LivePattern", "ReleaseDelta", "Storage", "StorageStats", "ViewerRecord"]
