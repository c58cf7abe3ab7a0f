"""One federation round against a storage: apply, prune, consolidate, diff, commit.

Only ``commit_release`` publishes anything, and it is one transaction that is
optimistic on the base version; so a worker that dies anywhere in a round leaves no
partial release, and two workers racing on one storage publish one release between them
(the loser gets ``status="conflict"`` and changes nothing). Contributions applied before
a crash stay applied: folding them into the live set is idempotent and the next round
consolidates them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from omega.errors import ServerError, TransportError
from omega.federation._table import build_table
from omega.federation.cells import CellGroups
from omega.federation.config import FederationConfig
from omega.federation.consolidate import ConsolidationStats, consolidate_table
from omega.federation.popularity import diff_popular, fold_reports, popular_scores
from omega.federation.shared import SharedCounting, fold_shares
from omega.federation.trends import detect_trends_table
from omega.protocol.messages import ConsolidatedPattern, Trend
from omega.storage.base import Codebook, Storage

__all__ = ["RoundResult", "RoundStatus", "diff_release", "run_round"]

_log = logging.getLogger("omega.federation")

RoundStatus = Literal["released", "unchanged", "no_codebook", "conflict"]
#: Steps a round announces to ``on_step`` (tests use it to kill a round between steps).
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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _moved(old: float, new: float, tolerance: float) -> bool:
    return abs(new - old) > tolerance * max(abs(old), 1e-9)


def _changed(old: ConsolidatedPattern | None, new: ConsolidatedPattern, tolerance: float) -> bool:
    if old is None:
        return True
    return (
        old.cells != new.cells
        or old.task != new.task
        or old.context != new.context
        or _moved(old.weight, new.weight, tolerance)
        or abs(old.success_rate - new.success_rate) > tolerance
    )


def diff_release(
    current: list[ConsolidatedPattern], new: list[ConsolidatedPattern], *, tolerance: float
) -> tuple[list[ConsolidatedPattern], list[str]]:
    """Upserts (new, or moved by more than ``tolerance``) and removals (no longer passing)."""
    by_id = {p.id: p for p in current}
    upserted = [p for p in new if _changed(by_id.get(p.id), p, tolerance)]
    keep = {p.id for p in new}
    return upserted, sorted(pid for pid in by_id if pid not in keep)


def _trends_changed(old: list[Trend], new: list[Trend], tolerance: float) -> bool:
    if [(t.region, t.cell) for t in old] != [(t.region, t.cell) for t in new]:
        return True
    return any(_moved(a.score, b.score, tolerance) for a, b in zip(old, new, strict=True))


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


def run_round(
    storage: Storage,
    config: FederationConfig,
    *,
    now: float,
    worker_id: str,
    cells: CellGroups | None = None,
    on_step: Callable[[str], None] | None = None,
    shares: SharedCounting | None = None,
) -> RoundResult:
    """Run one round; see the module docstring for what survives a crash."""
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def step(name: str) -> None:
        timings[name] = round(time.perf_counter() - started, 4)
        if on_step is not None:
            on_step(name)

    cells = cells or CellGroups()

    applied = 0
    while applied < config.max_apply_per_round:
        n = storage.apply_pending(worker_id=worker_id, limit=config.apply_batch, now=now)
        applied += n
        if n < config.apply_batch:
            break
        if config.apply_pause_s > 0:
            time.sleep(config.apply_pause_s)
    step("applied")
    pruned = storage.prune_live(updated_before=now - config.max_age_s)
    storage.prune_batches(created_before=now - config.batch_retention_s)
    step("pruned")

    codebook = storage.get_codebook()
    base_version, current = storage.current_release()

    def result(status: RoundStatus, version: int, **counts: Any) -> RoundResult:
        fields: dict[str, Any] = {"live": 0, "released": 0, "upserted": 0, "removed": 0}
        fields |= {"trends": 0, "stats": None, "timings": timings} | counts
        seconds = time.perf_counter() - started
        return RoundResult(status, version, applied, pruned, seconds=seconds, **fields)

    if codebook is None:
        return result("no_codebook", base_version)
    oldest = now - config.max_age_s
    live = storage.live_patterns(codebook_id=codebook.codebook_id, updated_after=oldest)
    step("read")

    groups = cells.for_codebook(codebook, config.similarity)
    table = build_table(live, config, k=len(groups), now=now)
    patterns, stats = consolidate_table(table, groups, config, codebook_id=codebook.codebook_id)
    trends = detect_trends_table(table, config, now=now)
    upserted, removed = diff_release(current, patterns, tolerance=config.change_tolerance)
    reports = fold_reports(
        storage, codebook, batch=config.report_batch, limit=config.max_apply_per_round
    )
    if shares is not None:
        reports += _count_shares(storage, codebook, shares, limit=config.max_apply_per_round)
    ranked = popular_scores(
        storage.popularity_counts(codebook_id=codebook.codebook_id),
        codebook.item_ids,
        top=config.popular_top,
        reference=config.popular_reference,
    )
    popular = diff_popular(storage.current_popular(), ranked, tolerance=config.popular_tolerance)
    step("consolidated")

    counts: dict[str, Any] = {
        "live": len(live),
        "released": len(patterns),
        "trends": len(trends),
        "stats": stats,
        "reports": reports,
    }
    old_trends = storage.current_trends()
    if (
        not upserted
        and not removed
        and not popular
        and not _trends_changed(old_trends, trends, config.change_tolerance)
    ):
        return result("unchanged", base_version, **counts)
    step("committing")
    version = storage.commit_release(
        base_version=base_version,
        upserted=upserted,
        removed=removed,
        trends=trends,
        now=now,
        popular=popular,
    )
    if version is None:
        return result("conflict", base_version, **counts)
    changed = {"upserted": len(upserted), "removed": len(removed), "popular": len(popular)}
    return result("released", version, **changed, **counts)
