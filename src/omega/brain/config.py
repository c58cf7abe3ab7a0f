"""The brain's settings: a small typed object with sensible TV defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from omega.errors import ConfigError

__all__ = ["REPORT_BUDGET", "REPORT_WINDOW_S", "BrainConfig", "ConflictStrategy", "TierHalfLives"]

#: How the device's own evidence and the constellation's combine where both speak about
#: one (a → b) transition (see ``omega.sync.conflicts``).
ConflictStrategy = Literal["viewer-wins", "omega-wins", "quality-wins", "merge"]

HOUR = 3600.0
DAY = 24 * HOUR
#: Default popularity-report budget: ε 160 per 365 days (see ``BrainConfig.report_budget``).
REPORT_BUDGET = 160.0
#: What one contributed co-watch pair costs that budget (``BrainConfig.cowatch_epsilon``).
COWATCH_EPSILON = 0.25
REPORT_WINDOW_S = 365 * DAY


@dataclass(frozen=True, slots=True, kw_only=True)
class TierHalfLives:
    """How fast each memory tier forgets, in seconds: the tiers are time scales."""

    instant: float = 0.5 * HOUR
    episodic: float = 2 * DAY
    semantic: float = 60 * DAY
    evolutionary: float = 365 * DAY


@dataclass(frozen=True, slots=True, kw_only=True)
class BrainConfig:
    """Everything tunable about one TV's brain."""

    #: Only patterns at least this successful may leave the device.
    min_quality: float = 0.7
    #: ...and only when backed by at least this many distinct episodes.
    min_support: int = 3
    #: Bounded storage: at most this many patterns (least valuable pruned first).
    max_patterns: int = 10_000
    #: Episodes older than this are pruned at weekly consolidation (seconds).
    episode_retention: float = 180 * DAY
    #: A gap longer than this starts a new viewing session.
    session_gap: float = 2 * HOUR
    #: Views within this long of each other count as one transition (a → b).
    transition_window: float = 2 * DAY
    #: Number of content cells in a locally built codebook.
    codebook_cells: int = 256
    #: Derived state (tiers, patterns, outbox) is flushed every this many events; each
    #: event itself is committed at once, and anything newer is replayed on open.
    flush_every: int = 256
    half_lives: TierHalfLives = field(default_factory=TierHalfLives)
    #: Candidates gathered per source before scoring.
    candidates: int = 100
    #: 0 = pure relevance, 1 = maximal spread across content cells.
    diversity: float = 0.15
    #: viewer-wins, omega-wins, quality-wins or merge (both pooled, the default).
    conflict_strategy: ConflictStrategy = "merge"
    #: ε of the one local-differential-privacy popularity report (OLH) a push may carry
    #: about a title started since the last one; 0 sends none. Each report is ε-LDP: it
    #: changes the odds of any guess about which title it came from by at most e^ε.
    #: Reports compose: k reports bound the viewer's total loss by k·ε.
    report_epsilon: float = 8.0
    #: The most ε a viewer's reports may spend within any ``report_window_s`` (20 reports
    #: at ε = 8 a year); while it is spent, pushes carry no report.
    #: Without a cap the loss grows with activity: in the ml-latest-small replay one
    #: viewer's 851 reports composed to 6,808. 0 lifts the cap (``report_epsilon`` 0 is
    #: what turns reports off).
    report_budget: float = REPORT_BUDGET
    report_window_s: float = REPORT_WINDOW_S
    #: What a two-server report (sent instead of an OLH report when the sync client is
    #: given a helper's key; ``omega.protocol.shares``) costs the budget: neither server
    #: sees the title, and each adds noise of this ε per report to what it releases, so
    #: the released counts are ε-DP per report. At 4, the budget allows 40 reports a year.
    shared_epsilon: float = 4.0
    #: The crowd's popularity adds to a title's score only when the title is among this
    #: many of the household's unseen titles ranked by its own signals (0: everywhere;
    #: scored on a sample, the same share of the sample). With a third of the fleet
    #: reporting one obscure title, ungated popularity put it in 16 % of honest top-10s
    #: (ml-latest-small, seed 0, offline); the top 4 % (~390 titles) let it into 1.3–1.6 %
    #: of them on seeds 1 and 2; the top 100 (~1 %) into none on any seed, for as good an
    #: NDCG@10 without the attack (docs/results.md).
    popular_pool: int = 100
    #: Unseen titles each self-test ranks an enjoyed title among (see ``skills``): all of
    #: them up to this catalog size, a sample of this many above (on the demo's viewers a
    #: sample of 100 chose as well as the whole catalog, at a fraction of the cost); 0
    #: turns self-tests off, leaving skill choice to shown recommendations alone.
    self_test_sample: int = 300
    #: Co-watch (``omega.brain.cowatch``): pairs a → b with b within this many engaged
    #: titles after a (tuned on the ml-latest-small validation split: docs/brain.md).
    cowatch_window: int = 3
    #: The household's last this many distinct engaged titles score against the table…
    cowatch_recent: int = 10
    #: …each counting this much less than the one after it.
    cowatch_decay: float = 0.7
    #: What a released pair b → a adds to a → b (viewers of b often watched a just before).
    cowatch_backward: float = 0.25
    #: Each source's row is divided by its degree (the sum of its row) to this power: 1
    #: makes every row sum to 1, 0.5 lets a well-backed source count more than a title
    #: seen with one neighbour (better on the validation splits of ml-latest-small and of
    #: half its viewers: docs/cowatch.md).
    cowatch_degree_exponent: float = 0.5
    #: A title counts for co-watch when viewed or rated with at least this reward.
    cowatch_min_reward: float = 0.3
    #: The most pairs the TV contributes per epoch (0: none); tuned on the validation
    #: split (docs/cowatch.md), and the servers' default bound (a TV sends at most what
    #: the constellation's ``cowatch_per_epoch`` allows).
    cowatch_pairs_per_epoch: int = 128
    #: Pairs are derived from the newest this many engaged titles (a whole MovieLens
    #: history: a TV whose budget renews contributes older pairs in later epochs).
    cowatch_lookback: int = 5000
    #: Among equally close pairs, contribute first those likeliest to reach the release's
    #: k TVs: by the released popularity of the pair's rarer title
    #: (``omega.brain.cowatch.likely_first``).
    cowatch_likely_first: bool = True
    #: What one contributed pair costs the report budget (``report_budget``, shared with
    #: popularity reports): tuned with ``cowatch_pairs_per_epoch`` on the validation split
    #: (docs/cowatch.md). At ``shared_epsilon`` (4) a TV could afford 40 pairs a year,
    #: never one epoch's 128.
    cowatch_epsilon: float = COWATCH_EPSILON
    #: A released pair a → b backed by more than this many times b's best count as a
    #: source is dropped (so is one whose b has no row); 0 turns the rule off
    #: (``omega.brain._cowatch_spread``: a title forged into popular rows has no row).
    cowatch_spread: float = 0.0
    #: The co-watch signal lifts only titles among this many of the household's unseen
    #: titles ranked by its own signals (0: any title). A defence against forged pairs
    #: (see ``docs/brain.md``: the promote-item coalition); off by default.
    cowatch_pool: int = 0
    #: Durable commits (the outbox, cursors, releases: what a sync must not lose to a
    #: power cut) wait for the disk (``fsync``). False only for a brain whose files are
    #: thrown away after use — the simulator's fleets: the same commits, no fsync.
    fsync: bool = True

    def __post_init__(self) -> None:
        self._check_cowatch()
        if self.popular_pool < 0:
            raise ConfigError(f"popular_pool must be ≥ 0, got {self.popular_pool!r}")
        if not 0.0 < self.shared_epsilon <= 20.0:
            raise ConfigError(f"shared_epsilon must be in (0, 20], got {self.shared_epsilon!r}")
        if self.report_budget < 0 or self.report_window_s <= 0:
            raise ConfigError(
                "report_budget must be ≥ 0 (0: no cap) and report_window_s > 0, got "
                f"{self.report_budget!r} and {self.report_window_s!r}"
            )

    def _check_cowatch(self) -> None:
        if self.cowatch_window < 1 or self.cowatch_recent < 1 or self.cowatch_lookback < 2:
            raise ConfigError(
                "cowatch_window and cowatch_recent must be ≥ 1 and cowatch_lookback ≥ 2, got "
                f"{self.cowatch_window!r}, {self.cowatch_recent!r}, {self.cowatch_lookback!r}"
            )
        if not 0.0 < self.cowatch_decay <= 1.0 or not 0.0 <= self.cowatch_backward <= 1.0:
            raise ConfigError(
                "cowatch_decay must be in (0, 1] and cowatch_backward in [0, 1], got "
                f"{self.cowatch_decay!r}, {self.cowatch_backward!r}"
            )
        if not 0.0 <= self.cowatch_degree_exponent <= 1.0:
            raise ConfigError(
                f"cowatch_degree_exponent must be in [0, 1], got {self.cowatch_degree_exponent!r}"
            )
        if self.cowatch_spread < 0:
            raise ConfigError(f"cowatch_spread must be ≥ 0, got {self.cowatch_spread!r}")
        if not 0.0 < self.cowatch_epsilon <= 20.0:
            raise ConfigError(f"cowatch_epsilon must be in (0, 20], got {self.cowatch_epsilon!r}")
        if self.cowatch_pool < 0:
            raise ConfigError(f"cowatch_pool must be ≥ 0, got {self.cowatch_pool!r}")
        if self.cowatch_pairs_per_epoch < 0:
            raise ConfigError(
                f"cowatch_pairs_per_epoch must be ≥ 0, got {self.cowatch_pairs_per_epoch!r}"
            )
