"""The JSON-ready result of ``omega simulate``: Omega's figures beside every row, the
paired comparison with each row, the timeline against local-only, the privacy audit's
figures and the co-watch source's."""

from __future__ import annotations

from typing import Any

from omega.sim._simulate_fleets import World
from omega.sim.fleet import FleetRun
from omega.sim.metrics import FloatArray, paired_difference

__all__ = ["build_result", "cowatch_summary", "pair_with_omega"]

#: The privacy audit's figures a result carries, under the same names.
_AUDITED = (
    "push_bytes_median",
    "pull_bytes_median",
    "push_bytes_p95",
    "pull_bytes_p95",
    "raw_items_sent",
    "event_records_sent",
    "search_strings_sent",
    "requests_inspected",
    "patterns_sent",
    "frequency_reports_sent",
    "report_epsilon",
)
_AUDITED_SHARED = (
    "shared_reports_sent",
    "shared_epsilon",
    "epsilon_per_viewer_median",
    "epsilon_per_viewer_max",
)


def pair_with_omega(
    rows: dict[str, dict[str, float]], omega: list[FloatArray], gains: dict[str, list[FloatArray]]
) -> None:
    """Each row's ``omega_minus_ndcg@10`` (Omega's NDCG@10 less the row's, on the same
    viewers) and its standard error ``omega_minus_ndcg@10_se``: whether Omega is above a
    row by more than one run's noise."""
    for name, row_gains in gains.items():
        if omega and row_gains and name in rows:
            diff, se = paired_difference(omega[0], row_gains[0])
            rows[name] |= {"omega_minus_ndcg@10": diff, "omega_minus_ndcg@10_se": se}


def _timeline(
    world: World,
    local_checkpoints: list[dict[str, float]],
    omega: FleetRun,
    omega_figures: dict[str, float],
    local_figures: dict[str, float],
) -> list[dict[str, float]]:
    """Omega against local-only at each checkpoint, then at the end of the replay."""
    marks = [
        (mark_local, mark_omega)
        for mark_local, mark_omega in zip(local_checkpoints, omega.checkpoints, strict=False)
        if "ts" in mark_local and "ts" in mark_omega
    ]
    timeline: list[dict[str, float]] = [
        {
            "ts": mark_omega["ts"],
            "viewers": int(mark_omega["viewers"]),
            "omega_ndcg@10": mark_omega["ndcg@10"],
            "local_only_ndcg@10": mark_local["ndcg@10"],
            "omega_hr@10": mark_omega["hr@10"],
            "local_only_hr@10": mark_local["hr@10"],
        }
        for mark_local, mark_omega in marks
    ]
    timeline.append(
        {
            "ts": float(world.split.holdout_timestamp.max(initial=0)),
            "viewers": world.split.n_viewers,
            "omega_ndcg@10": omega_figures["ndcg@10"],
            "local_only_ndcg@10": local_figures["ndcg@10"],
            "omega_hr@10": omega_figures["hr@10"],
            "local_only_hr@10": local_figures["hr@10"],
        }
    )
    return timeline


def build_result(
    world: World,
    omega: FleetRun,
    omega_figures: dict[str, float],
    baselines: dict[str, dict[str, float]],
    local_checkpoints: list[dict[str, float]],
) -> dict[str, Any]:
    """The JSON-ready result, without the attack and the timings."""
    dataset, options = world.dataset, world.options
    assert omega.audit is not None
    audit = omega.audit.summary()
    released = next(
        (c["released_patterns"] for c in omega.checkpoints if "released_patterns" in c), 0.0
    )
    timeline = _timeline(world, local_checkpoints, omega, omega_figures, baselines["local_only"])
    return {
        "dataset": str(dataset.path),
        "format": str(dataset.format),
        "viewers": world.split.n_viewers,
        "items": dataset.n_items,
        "events": dataset.n_ratings,
        "seed": options.seed,
        "holdout": "second-to-last (validation)" if options.validation else "last",
        "cells": len(world.shared.centroids),
        "constellation": omega.constellation,
        "omega": omega_figures,
        "baselines": baselines,
        **{name: audit[name] for name in _AUDITED},
        "reports": options.fleet.reports,
        **{name: audit[name] for name in _AUDITED_SHARED},
        "syncs": omega.syncs,
        "rounds": omega.rounds,
        "released_patterns": int(released),
        "cowatch": cowatch_summary(omega),
        "timeline": timeline,
        "sync_bytes": {"push": omega.audit.push_bytes, "pull": omega.audit.pull_bytes},
    }


def cowatch_summary(run: FleetRun) -> dict[str, Any] | None:
    """The co-watch source's figures: the stand-in's, or the private protocol's (its
    audit, requests, rows released and what a new TV pulled); None without co-watch."""
    if run.cowatch is not None:
        return dict(run.cowatch.summary())
    if run.private is None:
        return None
    return {
        "source": "private (STAR through the helper, two-server OPRF, k ≥ 3 distinct TVs)",
        **run.private.summary(run.forged),
        "cowatch_rows_released": run.cowatch_rows,
        "tvs_holding_rows": sum(1 for v in run.viewers.values() if v.brain.cowatch.version()),
        "newcomer_pull_bytes": run.newcomer_pull_bytes,
        "newcomer_syncs": run.newcomer_syncs,
        "dp": run.cowatch_dp,
    }
