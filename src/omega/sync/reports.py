"""The popularity report a push carries: one ε-LDP OLH report of a title started lately,
or — when the sync client pins a helper's key — one two-server report of it
(``omega.protocol.shares``: the exact title, split so that neither server sees it).

At each new push the device looks at the episodes since its last report (cursor
``report_episode``), takes the titles it *started* (views and ratings, not skips),
picks one uniformly with the system's CSPRNG and randomises it with
:func:`omega.protocol.frequency.make_report`. The report rides in the push, so it is
recorded with the batch (``begin_batch``) and a retry resends the identical bytes; the
cursor moves in that same durable transaction, so a title is reported once at most.

A privacy budget caps what the reports compose to: the time and ε of each report sent
within the last ``report_window_s`` are kept (cursor ``report_spent``, stored with the
batch too) and no report is made while one more would take their ε past
``report_budget``. The report cursor still moves with any push, so titles started while
the budget is spent are not reported later. The window assumes a roughly monotonic clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from omega.brain import Brain
from omega.protocol import MAX_SHARED_CATALOG
from omega.protocol.frequency import make_report
from omega.protocol.messages import FrequencyReport, SharedReport
from omega.protocol.shares import make_shared_report
from omega.sync.cursors import CatalogOrder

__all__ = ["REPORT_CURSOR", "REPORT_SPENT", "ReportPlan", "next_report"]

REPORT_CURSOR = "report_episode"
REPORT_SPENT = "report_spent"
_SYSTEM_RNG = random.SystemRandom()


@dataclass(frozen=True, slots=True)
class ReportPlan:
    report: FrequencyReport | None
    cursor: int  # the last episode this report covers (stored when the batch is recorded)
    spent: str | None = None  # the budget window's reports, as stored with the batch
    shared: SharedReport | None = None

    def cursors(self) -> dict[str, str]:
        """What to store with the batch that carries this plan."""
        stored = {REPORT_CURSOR: str(self.cursor)}
        if self.spent is not None:
            stored[REPORT_SPENT] = self.spent
        return stored


def _spent_within(
    stored: str, now: float, window: float, budget: float
) -> list[tuple[float, float]]:
    """The (time, ε) of the reports still inside the window.

    A time ahead of the clock counts as now, so a clock that ran ahead and was corrected
    frees its slots one window later rather than years later. A record that cannot be read
    counts as the whole budget spent now: no report for one window, never a crash."""
    kept = []
    try:
        for entry in stored.split():
            at, _, epsilon = entry.partition(":")
            kept.append((min(float(at), now), float(epsilon)))
    except ValueError:
        return [(now, budget)]
    return [(at, epsilon) for at, epsilon in kept if now - at < window]


def _record(spent: list[tuple[float, float]]) -> str:
    return " ".join(f"{at!r}:{epsilon!r}" for at, epsilon in spent)


def next_report(
    brain: Brain,
    rng: random.Random | None = None,
    helper_key: X25519PublicKey | None = None,
    positions: dict[str, int] | None = None,
) -> ReportPlan | None:
    """The report for the titles started since the last one; None when no episode is new.

    With ``helper_key``, a two-server report of a title in the server's catalog order
    (``positions``, read from the store when not given; no report while the device has
    not fetched it), charged ``shared_epsilon``."""
    started = brain.sync.started_since(int(brain.sync.cursor(REPORT_CURSOR, "0")))
    if started is None:
        return None
    cursor, titles = started.last_episode, started.item_ids
    shared = helper_key is not None
    epsilon = brain.config.report_epsilon
    if shared:
        positions = CatalogOrder.positions(brain) if positions is None else positions
        if len(positions) > MAX_SHARED_CATALOG:  # past what a report can index: none
            positions = {}
        titles = [item for item in titles if item in positions]
    if epsilon <= 0 or not titles:
        return ReportPlan(None, cursor)
    if shared:
        epsilon = brain.config.shared_epsilon
    rng = rng or _SYSTEM_RNG
    budget = brain.config.report_budget
    spent_record = None
    if budget > 0:
        now = float(brain.clock.now())
        spent = _spent_within(
            brain.sync.cursor(REPORT_SPENT), now, brain.config.report_window_s, budget
        )
        if sum(e for _, e in spent) + epsilon > budget + 1e-9:
            return ReportPlan(None, cursor, _record(spent))
        spent.append((now, float(epsilon)))
        spent_record = _record(spent)
    title = rng.choice(titles)
    if helper_key is not None and positions:
        report = make_shared_report(positions[title], len(positions), helper_key)
        return ReportPlan(None, cursor, spent_record, report)
    return ReportPlan(make_report(title, epsilon, rng), cursor, spent_record)
