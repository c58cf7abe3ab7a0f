"""Federation: aggregation rounds that turn viewers' live patterns into releases.

``consolidate`` (pure) filters, clusters, bounds each viewer's influence, fuses robustly
and applies consensus; ``explain_consensus`` says why one cluster is released or
withheld; ``detect_trends`` finds rising content; ``plan_release`` (pure)
plans what a round publishes (in one piece, or in partitions by target content group on
an ``Engine``: ``SerialEngine`` here, ``DaskEngine`` on a Dask cluster);
``run_round`` does one round against a ``Storage``;
``Worker`` runs rounds on a schedule (``omega worker``).
"""

from __future__ import annotations

from omega.federation.cells import CellGroups, centroids_of, group_cells
from omega.federation.config import FederationConfig, FusionRule
from omega.federation.consensus import ConsensusReport, explain_consensus
from omega.federation.consolidate import (
    ConsolidationStats,
    consolidate,
    consolidate_table,
    pattern_id,
)
from omega.federation.engines import DaskEngine, Engine, SerialEngine, open_engine
from omega.federation.fusion import fuse_grouped
from omega.federation.plan import ReleasePlan, RoundInputs, diff_release, plan_release
from omega.federation.rounds import RoundResult, RoundStatus, run_round
from omega.federation.trends import GLOBAL_REGION, detect_trends
from omega.federation.worker import Worker

__all__ = [
    "GLOBAL_REGION",
    "CellGroups",
    "ConsensusReport",
    "ConsolidationStats",
    "DaskEngine",
    "Engine",
    "FederationConfig",
    "FusionRule",
    "ReleasePlan",
    "RoundInputs",
    "RoundResult",
    "RoundStatus",
    "SerialEngine",
    "Worker",
    "centroids_of",
    "consolidate",
    "consolidate_table",
    "detect_trends",
    "diff_release",
    "explain_consensus",
    "fuse_grouped",
    "group_cells",
    "open_engine",
    "pattern_id",
    "plan_release",
    "run_round",
]
