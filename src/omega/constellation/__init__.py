"""The constellation: Omega's central service (REST, SSE, auth, limits, ingestion, pulls)."""

from __future__ import annotations

from omega.constellation._runtime import load_admin_token, load_keys, load_release_keys
from omega.constellation.app import create_app, ensure_data_dir
from omega.constellation.settings import Settings

__all__ = [
    "Settings",
    "create_app",
    "ensure_data_dir",
    "load_admin_token",
    "load_keys",
    "load_release_keys",
]
