"""The on-device brain: catalog, embedder, index, memory tiers, patterns, skills, recommender."""

from __future__ import annotations

from omega.brain.brain import DIM, Brain, Tracked
from omega.brain.catalog import CatalogItem
from omega.brain.config import BrainConfig, TierHalfLives
from omega.brain.episodes import Context
from omega.brain.recommend import Filters, Recommendation

__all__ = [
    "DIM",
    "Brain",
    "BrainConfig",
    "CatalogItem",
    "Context",
    "Filters",
    "Recommendation",
    "TierHalfLives",
    "Tracked",
]
