"""One federation round against a storage: apply, plan the release, commit.

Only ``commit_release`` publishes anything, and it is one transaction that is
optimistic on the base version; so a worker that dies anywhere in a round leaves no
partial release, and two workers racing on one storage publish one release between them
(the loser gets ``status="conflict"`` and changes nothing). Contributions applied before
a crash stay applied: folding them into the live set is idempotent and the next round
consolidates them.

A round is three steps: apply (fold pushed contributions and popularity reports in),
plan (``omega.federation.plan``: pure, from what the round read), commit.

The co-watch step (folding the helper's batches, and with central DP the private
release) never costs a round its pattern release: a helper that is down costs it the
co-watch update, a storage error in the step the same, said in the result's
``cowatch_error`` (and logged). Nothing of it is lost: an unacknowledged batch comes
again, and a fold that no private release covered yet is released by the next round,
new batch or not (``CowatchStore.unreleased_folds``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from omega.errors import ServerError, StoreError, TransportError
from omega.federation.cells import CellGroups
from omega.federation.config import FederationConfig
from omega.federation.consolidate import ConsolidationStats
from omega.federation.cowatch import CowatchCounting, fold_cowatch, release_owed
from omega.federation.engines import Engine
from omega.federation.plan import ReleasePlan, RoundInputs, diff_release, plan_release
from omega.federation.popularity import fold_reports
from omega.federation.shared import SharedCounting, fold_shares
from omega.storage.base import Codebook, Storage

__all__ = ["RoundResult", "RoundStatus", "diff_release", "run_round"]

_log = logging.getLogger("omega.federation")

RoundStatus = Literal["released", "unchanged", "no_codebook", "conflict"]
#: Steps a round announces to ``on_step`` (tests use it to kill a round between steps).
#: Helper batches a round folds at most (each up to the helper's 5,000 reports).
_MAX_COWATCH_BATCHES = 20
STEPS = ("applied", "pruned", "read", "consolidated", "committing")


@dataclass(frozen=True, slots=True)
class RoundResult:
    status: RoundStatus
    version: int  # the release version after the round (new, or unchanged)
    applied: int
    pruned: int
    live: int
    released: int  # patterns live in the release this round computed
    upserted: int
    removed: int
    trends: int
    seconds: float
    stats: ConsolidationStats | None = None
    #: Seconds from the start of the round to the end of each step it reached.
    timings: dict[str, float] = field(default_factory=dict)
    #: Popularity: reports folded this round (OLH and two-server), and popular entries
    #: released.
    reports: int = 0
    popular: int = 0
    #: Co-watch rows (per-title neighbours) released this round (``docs/cowatch.md``).
    cowatch_rows: int = 0
    #: Why the co-watch step stopped on a storage error (None: it did not); the next
    #: round retries what it left.
    cowatch_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_round(
    storage: Storage,
    config: FederationConfig,
    *,
    now: float,
    worker_id: str,
    cells: CellGroups | None = None,
    on_step: Callable[[str], None] | None = None,
    shares: SharedCounting | None = None,
    engine: Engine | None = None,
    cowatch: CowatchCounting | None = None,
) -> RoundResult:
    """Run one round: apply what was pushed, plan the release (pure), commit it.

    With an ``engine`` the plan's consolidation runs on it, partitioned by target content
    group (the same release). See the module docstring for what survives a crash."""
    progress = _Progress(on_step)
    _apply(storage, config, now=now, worker_id=worker_id, progress=progress)
    codebook = storage.get_codebook()
    base_version, current = storage.current_release()
    if codebook is None:
        return progress.result("no_codebook", base_version)
    live = storage.live_patterns(
        codebook_id=codebook.codebook_id, updated_after=now - config.max_age_s
    )
    revoked = storage.revoked_viewers()  # attested under a revoked manufacturer key
    if revoked:
        live = [p for p in live if p.viewer_id not in revoked]
    progress.live = len(live)
    progress.reached("read")
    progress.reports = _fold_popularity(storage, codebook, config, shares)
    if cowatch is not None:
        counted = _count_cowatch(storage, cowatch, now=now)
        progress.cowatch, progress.cowatch_error = counted.rows, counted.error
    inputs = RoundInputs(
        codebook=codebook,
        live=live,
        base_version=base_version,
        current=current,
        current_trends=storage.current_trends(),
        popularity=storage.popularity_counts(codebook_id=codebook.codebook_id),
        current_popular=storage.current_popular(),
    )
    groups = (cells or CellGroups()).for_codebook(codebook, config.similarity)
    plan = plan_release(inputs, groups, config, now=now, engine=engine)
    progress.reached("consolidated")
    return _commit(storage, plan, now=now, progress=progress)


@dataclass(slots=True)
class _Progress:
    """What a round has done so far: its counts and the seconds to each step it reached."""

    on_step: Callable[[str], None] | None
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    applied: int = 0
    pruned: int = 0
    live: int = 0
    reports: int = 0
    cowatch: int = 0
    cowatch_error: str | None = None

    def reached(self, step: str) -> None:
        self.timings[step] = round(time.perf_counter() - self.started, 4)
        if self.on_step is not None:
            self.on_step(step)

    def result(
        self, status: RoundStatus, version: int, plan: ReleasePlan | None = None
    ) -> RoundResult:
        """The round's result; only a released ``plan`` counts its changes."""
        published = plan if status == "released" else None
        return RoundResult(
            status,
            version,
            self.applied,
            self.pruned,
            live=self.live,
            released=len(plan.patterns) if plan else 0,
            upserted=len(published.upserted) if published else 0,
            removed=len(published.removed) if published else 0,
            trends=len(plan.trends) if plan else 0,
            seconds=time.perf_counter() - self.started,
            stats=plan.stats if plan else None,
            timings=self.timings,
            reports=self.reports,
            popular=len(published.popular) if published else 0,
            cowatch_rows=self.cowatch,
            cowatch_error=self.cowatch_error,
        )


def _apply(
    storage: Storage, config: FederationConfig, *, now: float, worker_id: str, progress: _Progress
) -> None:
    """Fold pending contributions into the live set, then forget what is too old."""
    while progress.applied < config.max_apply_per_round:
        n = storage.apply_pending(worker_id=worker_id, limit=config.apply_batch, now=now)
        progress.applied += n
        if n < config.apply_batch:
            break
        if config.apply_pause_s > 0:
            time.sleep(config.apply_pause_s)
    progress.reached("applied")
    progress.pruned = storage.prune_live(updated_before=now - config.max_age_s)
    storage.prune_batches(created_before=now - config.batch_retention_s)
    progress.reached("pruned")


def _fold_popularity(
    storage: Storage, codebook: Codebook, config: FederationConfig, shares: SharedCounting | None
) -> int:
    """Fold this round's popularity reports (ε-LDP, then two-server) into the counts."""
    reports = fold_reports(
        storage, codebook, batch=config.report_batch, limit=config.max_apply_per_round
    )
    if shares is not None:
        reports += _count_shares(storage, codebook, shares, limit=config.max_apply_per_round)
    return reports


def _count_shares(
    storage: Storage, codebook: Codebook, shares: SharedCounting, *, limit: int
) -> int:
    """Two-server reports counted this round. A helper that is down or answers garbage
    costs this round its popularity update, not its release."""
    counted = 0
    while counted < limit:
        try:
            n = fold_shares(storage, codebook, shares)
        except (TransportError, ServerError) as exc:
            _log.warning("two-server reports not counted this round: %s", exc)
            break
        counted += n
        if n == 0:
            break
    return counted


@dataclass(frozen=True, slots=True)
class CowatchCount:
    """What a round's co-watch step did: rows released, and the storage errors that
    stopped it (None: none did)."""

    rows: int
    error: str | None = None


def _count_cowatch(storage: Storage, cowatch: CowatchCounting, *, now: float) -> CowatchCount:
    """Co-watch rows released from the helper's batches. With central DP on, one private
    release after the folds whenever a fold is unreleased (this round's or an earlier
    round's that failed before its release). A helper that is down, or a storage error
    here, costs the round its co-watch update, not its release."""
    rows, errors = 0, []
    for _ in range(_MAX_COWATCH_BATCHES):
        try:
            step = fold_cowatch(storage, cowatch, now=now)
        except ServerError as exc:
            if exc.status == 404:  # a helper started without --trust-maker: no routes
                _log.warning(
                    "co-watch: the helper refused this round's batch request (a helper "
                    "without co-watch answers 404: start it with --trust-maker): %s",
                    exc,
                )
            else:  # its own failure (a full disk: 500), which its log explains
                _log.warning("co-watch: the helper failed this round's batch request: %s", exc)
            break
        except TransportError as exc:
            # a batch folded but not acknowledged comes again: folding it twice is a no-op
            _log.warning("co-watch: the helper was not reached this round: %s", exc)
            break
        except StoreError as exc:  # not acknowledged: the helper hands the batch out again
            errors.append(f"a co-watch batch was not folded: {exc}")
            _log.warning("%s (retried next round)", errors[-1])
            break
        if step.fold is None:
            break
        rows += step.fold.rows
    try:
        if cowatch.privacy is not None and storage.cowatch.unreleased_folds():
            # None: another round's release (another replica's) covered the fold since
            released = release_owed(storage, cowatch, now=now)
            rows += released.rows if released is not None else 0
    except StoreError as exc:  # one transaction: nothing published, nothing charged
        errors.append(f"the private co-watch release failed (no ε spent): {exc}")
        _log.warning("%s (retried next round)", errors[-1])
    return CowatchCount(rows, "; ".join(errors) or None)


def _commit(storage: Storage, plan: ReleasePlan, *, now: float, progress: _Progress) -> RoundResult:
    """Publish ``plan`` in one transaction, optimistic on its base version."""
    if not plan.changed:
        return progress.result("unchanged", plan.base_version, plan)
    progress.reached("committing")
    version = storage.commit_release(
        base_version=plan.base_version,
        upserted=plan.upserted,
        removed=plan.removed,
        trends=plan.trends,
        now=now,
        popular=plan.popular,
    )
    if version is None:
        return progress.result("conflict", plan.base_version, plan)
    return progress.result("released", version, plan)
