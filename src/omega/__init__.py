"""Omega: a federated, privacy-first recommendation system for TVs."""

from __future__ import annotations

from omega.errors import OmegaError

__all__ = ["OmegaError", "__version__"]
__version__ = "0.1.0"
