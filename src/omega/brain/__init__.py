"""The on-device brain: catalog, embedder, index, memory tiers, patterns, skills, recommender.

:class:`Brain` is the facade a TV app embeds; ``brain.sync`` (:class:`SyncState`) is the
one seam the device's sync uses; ``LOOPS`` lists its seven feedback loops, which
``Brain.tick`` (and the sync) drive.
"""

from __future__ import annotations

from omega.brain.brain import DIM, Brain
from omega.brain.catalog import CatalogItem, SharedCatalog
from omega.brain.config import BrainConfig, ConflictStrategy, TierHalfLives
from omega.brain.episodes import Context, Tracked
from omega.brain.loops import LOOPS, TICK_S, Loop
from omega.brain.recommend import Filters, Recommendation
from omega.brain.sync_state import InflightBatch, OutboxEntry, StartedTitles, SyncState

__all__ = [
    "DIM",
    "LOOPS",
    "TICK_S",
    "Brain",
    "BrainConfig",
    "CatalogItem",
    "ConflictStrategy",
    "Context",
    "Filters",
    "InflightBatch",
    "Loop",
    "OutboxEntry",
    "Recommendation",
    "SharedCatalog",
    "StartedTitles",
    "SyncState",
    "TierHalfLives",
    "Tracked",
]
