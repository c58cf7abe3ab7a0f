"""Figures read out of a simulation result dict, shared by the tables, Markdown and plots.

The result dict is ``omega simulate``'s output. Any section may be missing (no attack, no
timeline, a baseline skipped because ``implicit`` is not installed); every reader here
treats a missing, non-numeric or non-finite figure as "not available" (``None``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from omega.errors import InputError

__all__ = [
    "BASELINE_LABELS",
    "MAX_EXPOSURE_GAIN",
    "MAX_NDCG_DROP",
    "PULL_TARGET_BYTES",
    "PUSH_TARGET_BYTES",
    "QUALITY_COLUMNS",
    "SHORT_LABELS",
    "Check",
    "QualityRow",
    "attack_checks",
    "byte_checks",
    "fmt",
    "fmt_bytes",
    "fmt_share",
    "fmt_wall",
    "jsonable",
    "number",
    "privacy_checks",
    "quality_rows",
    "section",
]

PUSH_TARGET_BYTES = 1024  # issue 4: push median ≤ 1 KB
PULL_TARGET_BYTES = 5120  # issue 4: pull median ≤ 5 KB
MAX_NDCG_DROP = 0.10  # under attack, NDCG@10 drops ≤ 10 %
MAX_EXPOSURE_GAIN = 2.0  # and the target's exposure stays ≤ 2× clean

# Row order of the quality table: the fair comparison first, centralised references last.
BASELINE_LABELS: dict[str, str] = {
    "local_only": "local-only (federation off)",
    "popularity": "popularity",
    "item_knn": "item-kNN (centralised ref.)",
    "als": "ALS (centralised ref.)",
    "transitions": "co-watch transitions (centralised ref.)",
    "cowatch": "co-watch window (centralised ref.)",
    "cowatch_k3": "co-watch window, pairs of ≥ 3 viewers (centralised ref.)",
}

#: The terminal table's names for the rows (it has no room for the long ones).
SHORT_LABELS: dict[str, str] = {
    "omega": "Omega",
    "local_only": "local-only",
    "item_knn": "item-kNN",
    "als": "ALS",
    "transitions": "transitions",
    "cowatch": "co-watch",
    "cowatch_k3": "co-watch k≥3",
}

#: The quality tables' figure columns, after the model: (result key, heading). Headline
#: figures are tie-fair (expected under random tie-breaking).
QUALITY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ndcg@10", "NDCG@10"),
    ("ndcg@10_se", "± SE"),
    ("ndcg@10_pessimistic", "NDCG@10 pess."),
    ("hr@10", "HR@10"),
    ("hr@10_pessimistic", "HR@10 pess."),
    ("mrr", "MRR"),
    ("map@10", "MAP@10"),
    ("recall@10", "Recall@10"),
    ("coverage@10", "coverage@10"),
)

_PRIVACY = (
    ("raw_items_sent", "raw item ids"),
    ("event_records_sent", "event records"),
    ("search_strings_sent", "search strings"),
)


def number(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` when missing or not a number."""
    if value is None or isinstance(value, (bool, str)):
        return None
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        return None
    return as_float if math.isfinite(as_float) else None


def section(result: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """The mapping under ``key``, or an empty one."""
    value = result.get(key)
    return value if isinstance(value, Mapping) else {}


def fmt(value: float | None, spec: str = ".4f") -> str:
    return "—" if value is None else format(value, spec)


def fmt_bytes(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} B"


def fmt_share(value: float | None) -> str:
    """Attackers as a share (0.33 → 33 %) or, above 1, as a count."""
    if value is None:
        return "—"
    return f"{value:.0%}" if value <= 1.0 else f"{value:,.0f}"


def fmt_wall(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def jsonable(value: Any, where: str = "result") -> Any:
    """Plain JSON values: numpy scalars/arrays unwrapped, NaN/inf → null, paths → str."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays
        return jsonable(value.tolist(), where)
    raise InputError(f"{where} is a {type(value).__name__}, which a JSON report cannot hold")


@dataclass(frozen=True)
class QualityRow:
    key: str  # "omega" or a baseline name
    label: str
    hr: float | None
    ndcg: float | None
    ndcg_pessimistic: float | None
    vs_local: float | None  # NDCG@10 ÷ local-only NDCG@10
    skipped: bool
    #: Every figure of ``QUALITY_COLUMNS`` (None where the result lacks it).
    figures: Mapping[str, float | None]

    def cells(self, columns: tuple[tuple[str, str], ...] = QUALITY_COLUMNS) -> list[str]:
        """The ``columns`` figures, formatted (— where missing)."""
        return [fmt(self.figures.get(key)) for key, _ in columns]


def quality_rows(result: Mapping[str, Any]) -> list[QualityRow]:
    """Omega first, then each baseline present (known ones in a fixed order)."""
    baselines = section(result, "baselines")
    local = number(section(baselines, "local_only").get("ndcg@10"))
    entries: list[tuple[str, str, Mapping[str, Any]]] = []
    if "omega" in result:
        entries.append(("omega", "Omega (federated)", section(result, "omega")))
    known = [name for name in BASELINE_LABELS if name in baselines]
    others = sorted(name for name in baselines if name not in BASELINE_LABELS)
    for name in known + others:
        entries.append((name, BASELINE_LABELS.get(name, name), section(baselines, name)))
    rows = []
    for key, label, figures in entries:
        ndcg = number(figures.get("ndcg@10"))
        ratio = ndcg / local if ndcg is not None and local else None
        rows.append(
            QualityRow(
                key=key,
                label=label,
                hr=number(figures.get("hr@10")),
                ndcg=ndcg,
                ndcg_pessimistic=number(figures.get("ndcg@10_pessimistic")),
                vs_local=ratio,
                skipped=bool(figures.get("skipped")) or ndcg is None,
                figures={key: number(figures.get(key)) for key, _ in QUALITY_COLUMNS},
            )
        )
    return rows


@dataclass(frozen=True)
class Check:
    """One reported figure with its target: ``met`` is None when there is no target."""

    label: str
    value: str
    target: str = ""
    met: bool | None = None

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: ""}[self.met]


def byte_checks(result: Mapping[str, Any]) -> list[Check]:
    checks = []
    for side, target in (("push", PUSH_TARGET_BYTES), ("pull", PULL_TARGET_BYTES)):
        median = number(result.get(f"{side}_bytes_median"))
        p95 = number(result.get(f"{side}_bytes_p95"))
        if median is None and p95 is None:
            continue
        checks.append(
            Check(
                f"{side} bytes (median)",
                fmt_bytes(median),
                f"≤ {target // 1024} KB",
                None if median is None else median <= target,
            )
        )
        checks.append(Check(f"{side} bytes (p95)", fmt_bytes(p95)))
    for key, label in (
        ("syncs", "syncs"),
        ("rounds", "federation rounds"),
        ("released_patterns", "released patterns"),
    ):
        value = number(result.get(key))
        if value is not None:
            checks.append(Check(label, f"{value:,.0f}"))
    return checks


def privacy_checks(result: Mapping[str, Any]) -> list[Check]:
    checks = []
    inspected = number(result.get("requests_inspected"))
    if inspected is not None:
        checks.append(Check("requests inspected", f"{inspected:,.0f}"))
    for key, label in _PRIVACY:
        value = number(result.get(key))
        if value is not None:
            checks.append(Check(f"{label} sent", f"{value:,.0f}", "0", value == 0))
    median = number(result.get("epsilon_per_viewer_median"))
    most = number(result.get("epsilon_per_viewer_max"))
    if median is None or most is None:
        return checks
    composed = f"per viewer, composed: median {median:g}, max {most:g}"
    reports = number(result.get("frequency_reports_sent"))
    epsilon = number(result.get("report_epsilon"))
    if reports and epsilon:
        checks.append(
            Check("popularity reports (ε-LDP)", f"{reports:,.0f} at ε = {epsilon:g}; {composed}")
        )
    shared = number(result.get("shared_reports_sent"))
    shared_epsilon = number(result.get("shared_epsilon"))
    if shared and shared_epsilon:
        checks.append(
            Check(
                "popularity reports (two-server)",
                f"{shared:,.0f}, no title readable by either server; counts released with "
                f"noise of ε = {shared_epsilon:g} per report; {composed}",
            )
        )
    return checks


def attack_checks(attack: Mapping[str, Any]) -> list[Check]:
    """NDCG drop and target exposure under attack, against issue 4's limits."""
    checks = []
    for metric, name in (("ndcg@10", "NDCG@10"), ("hr@10", "HR@10")):
        clean = number(attack.get(f"{metric}_clean"))
        hit = number(attack.get(f"{metric}_attacked"))
        if clean is None and hit is None:
            continue
        change = f" ({hit / clean - 1:+.1%})" if clean and hit is not None else ""
        met = None
        if metric == "ndcg@10" and clean is not None and hit is not None:
            met = hit >= clean * (1 - MAX_NDCG_DROP)
        target = f"drop ≤ {MAX_NDCG_DROP:.0%}" if metric == "ndcg@10" else ""
        checks.append(Check(name, f"{fmt(clean)} → {fmt(hit)}{change}", target, met))
    clean = number(attack.get("target_exposure_clean"))
    hit = number(attack.get("target_exposure_attacked"))
    if clean is not None or hit is not None:
        gain = f" ({hit / clean:.2f}×)" if clean and hit is not None else ""
        met = None if clean is None or hit is None else hit <= MAX_EXPOSURE_GAIN * clean
        checks.append(
            Check(
                "target exposure (share of top-10 lists)",
                f"{fmt(clean)} → {fmt(hit)}{gain}",
                f"≤ {MAX_EXPOSURE_GAIN:g}× clean",
                met,
            )
        )
    new_tv = [attack.get(f"target_on_new_tv_{run}") for run in ("clean", "attacked")]
    if any(isinstance(seen, bool) for seen in new_tv):
        shown = ["yes" if seen else "no" if seen is False else "—" for seen in new_tv]
        checks.append(Check("target on a new TV's first screen", " → ".join(shown)))
    return checks
