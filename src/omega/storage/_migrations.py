"""The constellation's migrations: ``migrations/<backend>/0001_name.sql`` (the scheme is
:mod:`omega.migrations`, shared with the brain)."""

from __future__ import annotations

from typing import Literal

from omega.migrations import Migration, check_known
from omega.migrations import load_migrations as _load

__all__ = ["Migration", "check_known", "load_migrations"]


def load_migrations(backend: Literal["sqlite", "sqlite_live", "postgres"]) -> list[Migration]:
    """The backend's migrations in order."""
    return _load("omega.storage", "migrations", backend)
