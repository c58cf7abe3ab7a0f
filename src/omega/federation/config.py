"""The federation round's settings: one small typed object, validated on creation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from omega.errors import ConfigError

__all__ = ["BehaviourRate", "FederationConfig", "FusionRule"]

#: How the votes of one cluster are fused (see ``omega.federation.fusion``).
FusionRule = Literal["trimmed_mean", "median", "weighted_mean"]
#: How a behaviour pattern's ``success_rate`` reads: ``success`` — the viewer's success
#: with content it abandons, so low (the protocol docstring); ``abandonment`` — how
#: reliably it abandons it, so high (what ``omega.brain`` sends). Releases use the same.
BehaviourRate = Literal["success", "abandonment"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FederationConfig:
    """Everything a round needs to decide what to release.

    Defaults follow DESIGN.md: quality 0.7, similarity 0.8, 3 viewers, 66% agreement.
    """

    #: Positive patterns (preference / recommendation / discovery) need success ≥ this;
    #: behaviour patterns (abandonment) need success ≤ 1 - this.
    min_quality: float = 0.7
    #: Cells whose centroids have cosine ≥ this are one content group (complete linkage).
    similarity: float = 0.8
    #: A cluster is released only with at least this many distinct backing viewers...
    min_viewers: int = 3
    #: ...and at least this share of the viewers with an opinion agreeing with it.
    min_agreement: float = 0.66
    #: A viewer's vote weighs at most this many episodes (bounds each viewer's influence).
    support_cap: int = 50
    fusion: FusionRule = "trimmed_mean"
    behaviour_rate: BehaviourRate = "success"
    #: Share of votes dropped at *each* end by the trimmed mean.
    trim: float = 0.25
    #: Distinct viewers at which a release's weight saturates (a coalition cannot push a
    #: cluster's weight past what this many honest viewers give it).
    viewers_saturation: int = 100
    #: Live patterns older than this are pruned and ignored.
    max_age_s: float = 30 * 86_400.0
    #: Idempotency records (viewer, batch id → ack) are kept this long: a device retrying
    #: a push within it gets its first ack back; after it, the push counts as new.
    batch_retention_s: float = 86_400.0
    #: Trends: half-lives of the fast and slow exponentially decayed counts.
    trend_half_life_s: float = 86_400.0
    trend_baseline_half_life_s: float = 7 * 86_400.0
    trend_min_viewers: int = 3
    #: A cell trends when its fast count is at least this many times what a steady
    #: stream with the same baseline would give.
    trend_min_lift: float = 1.5
    trends_per_region: int = 20
    #: Released patterns are re-sent only when their weight or success moves by more than
    #: this (relative), so devices do not pull noise every round.
    change_tolerance: float = 0.01
    #: Pending contributions applied per storage transaction.
    apply_batch: int = 5_000
    #: Seconds to wait between those transactions, so a server writing the same SQLite
    #: file gets the write lock in between (its busy handler polls; back-to-back
    #: transactions from a round would starve it).
    apply_pause_s: float = 0.0
    #: A round stops applying after this many (the rest wait for the next round), so a
    #: flood of pushes cannot keep a round from ever releasing.
    max_apply_per_round: int = 1_000_000
    #: Popularity (OLH reports): titles released, the score change that re-sends one,
    #: and reports folded per transaction.
    popular_top: int = 500
    #: Released scores are relative to this rank's estimate (capped at 1), so one title
    #: inflated by a coalition does not squash every other title's score.
    popular_reference: int = 5
    popular_tolerance: float = 0.05
    report_batch: int = 20_000

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (0.0 < self.min_quality <= 1.0, "min_quality must be in (0, 1]"),
            (0.0 < self.similarity <= 1.0, "similarity must be in (0, 1]"),
            (self.min_viewers >= 1, "min_viewers must be ≥ 1"),
            (0.5 <= self.min_agreement <= 1.0, "min_agreement must be in [0.5, 1]"),
            (self.support_cap >= 1, "support_cap must be ≥ 1"),
            (0.0 <= self.trim < 0.5, "trim must be in [0, 0.5)"),
            (self.viewers_saturation >= 1, "viewers_saturation must be ≥ 1"),
            (self.max_age_s > 0, "max_age_s must be > 0"),
            (self.batch_retention_s > 0, "batch_retention_s must be > 0"),
            (
                0 < self.trend_half_life_s < self.trend_baseline_half_life_s,
                "trend half-lives must satisfy 0 < fast < baseline",
            ),
            (self.trend_min_viewers >= 1, "trend_min_viewers must be ≥ 1"),
            (self.trend_min_lift >= 1.0, "trend_min_lift must be ≥ 1"),
            (self.trends_per_region >= 0, "trends_per_region must be ≥ 0"),
            (self.change_tolerance >= 0, "change_tolerance must be ≥ 0"),
            (self.apply_batch >= 1, "apply_batch must be ≥ 1"),
            (self.max_apply_per_round >= 1, "max_apply_per_round must be ≥ 1"),
            (0 <= self.popular_top <= 1000, "popular_top must be in [0, 1000]"),
            (self.popular_tolerance >= 0, "popular_tolerance must be ≥ 0"),
            (self.popular_reference >= 1, "popular_reference must be ≥ 1"),
            (self.report_batch >= 1, "report_batch must be ≥ 1"),
            (
                self.fusion in ("trimmed_mean", "median", "weighted_mean"),
                f"unknown fusion rule {self.fusion!r}",
            ),
            (
                self.behaviour_rate in ("success", "abandonment"),
                f"unknown behaviour_rate {self.behaviour_rate!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
