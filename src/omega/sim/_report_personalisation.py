"""The report's personalisation-speed section: its Markdown tables and its two PNG plots.

Reads ``result["personalisation"]`` as :func:`omega.sim.personalisation.personalisation`
writes it. Each plot function returns ``None`` when the result lacks what it draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.patches import Patch

from omega.sim._report_data import fmt, number, section
from omega.sim._report_plots import _figure, _png

__all__ = ["cold_start_png", "history_png", "personalisation_markdown"]

#: (key in the result, label, colour) for each row, in the order drawn.
_MODELS = (
    ("omega", "Omega (federated)", "#1f77b4"),
    ("local_only", "local-only", "#ff7f0e"),
    ("popularity", "popularity", "#7f7f7f"),
)
#: ``omega.sim.personalisation.TRUNCATED`` (not imported: that module loads the brain).
_TRUNCATED = "first k events"


def _rows(result: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = section(result, "personalisation").get(key)
    if isinstance(value, Mapping):
        value = value.get("curve")
    if not isinstance(value, list):
        return []
    return [row for row in value if isinstance(row, Mapping)]


def _cell(row: Mapping[str, Any], model: str) -> str:
    mean = number(row.get(f"{model}_ndcg@10"))
    se = number(row.get(f"{model}_ndcg@10_se"))
    return fmt(mean) + (f" ± {se:.4f}" if mean is not None and se is not None else "")


def personalisation_markdown(result: Mapping[str, Any]) -> list[str]:
    """The section's lines: NDCG@10 by history length, then the cold-start curve."""
    history = _rows(result, "by_history")
    curve = _rows(result, "cold_start")
    if not history and not curve:
        return []
    header = " | ".join(label for _, label, _ in _MODELS)
    rule = " | ".join("---:" for _ in _MODELS)
    lines = [
        "",
        "## Personalisation speed",
        "",
        "NDCG@10 with ties broken fairly (expected under random tie-breaking) ± its standard "
        "error. *full*: the run's viewers with that many training interactions, judged by "
        f"the protocol; *{_TRUNCATED}*: the cold-start probes below, each after its first k "
        "events (mean over the k in the bucket).",
    ]
    if history:
        lines += [
            "",
            f"| training interactions | histories | viewers | {header} |",
            f"| --- | --- | ---: | {rule} |",
        ]
        for row in history:
            cells = " | ".join(_cell(row, model) for model, _, _ in _MODELS)
            lines.append(
                f"| {row.get('bucket')} | {row.get('histories')} | {row.get('viewers')} | {cells} |"
            )
    if curve:
        fleet = number(
            section(section(result, "personalisation"), "cold_start").get("fleet_viewers")
        )
        probes = number(curve[0].get("viewers"))
        lines += [
            "",
            "### Cold start: a new TV after its first k events",
            "",
            f"{fmt(probes, ',.0f')} viewers held out of a second federated fleet of "
            f"{fmt(fleet, ',.0f')}; each replays its first k training events on a fresh TV "
            "that joined that fleet's constellation (local-only: without one; popularity: "
            "the second fleet's counts) and ranks its (k+1)-th title.",
            "",
            f"| k | {header} |",
            f"| ---: | {rule} |",
        ]
        for row in curve:
            cells = " | ".join(_cell(row, model) for model, _, _ in _MODELS)
            lines.append(f"| {row.get('k')} | {cells} |")
    return lines


def _series(
    rows: Sequence[Mapping[str, Any]], model: str
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]:
    means = [number(r.get(f"{model}_ndcg@10")) for r in rows]
    errors = [number(r.get(f"{model}_ndcg@10_se")) for r in rows]
    return (
        np.array([np.nan if m is None else m for m in means], dtype=np.float64),
        np.array([0.0 if e is None else e for e in errors], dtype=np.float64),
    )


def history_png(result: Mapping[str, Any]) -> bytes | None:
    """Grouped bars: NDCG@10 per bucket of training interactions, ± one standard error;
    hatched bars come from first-k-event histories."""
    rows = _rows(result, "by_history")
    if not rows:
        return None
    figure, (ax,) = _figure(9, 5.0)
    x = np.arange(len(rows), dtype=np.float64)
    width = 0.8 / len(_MODELS)
    truncated = [row.get("histories") == _TRUNCATED for row in rows]
    for n, (model, label, colour) in enumerate(_MODELS):
        means, errors = _series(rows, model)
        bars = ax.bar(
            x + (n - 1) * width,
            np.nan_to_num(means),
            width,
            yerr=errors,
            color=colour,
            label=label,
            capsize=2,
            error_kw={"lw": 0.8},
        )
        for bar, cut in zip(bars, truncated, strict=True):
            if cut:
                bar.set_hatch("//")
                bar.set_edgecolor("white")
    handles = [Patch(facecolor=colour, label=label) for _, label, colour in _MODELS]
    handles.append(
        Patch(facecolor="white", edgecolor="dimgray", hatch="//", label="first k events")
    )
    ticks = [
        f"{row.get('bucket')}\n{'first k' if cut else 'full'}\nn={row.get('viewers')}"
        for row, cut in zip(rows, truncated, strict=True)
    ]
    ax.set_xticks(x, ticks)
    ax.set_xlabel("training interactions (histories: full, or a held-out viewer's first k events)")
    ax.set_ylabel("NDCG@10, ties broken fairly")
    ax.set_title("Personalisation speed: quality by history length")
    ax.legend(handles=handles, loc="best", fontsize=9, framealpha=0.9)
    return _png(figure)


def cold_start_png(result: Mapping[str, Any]) -> bytes | None:
    """NDCG@10 of a new TV after its first k events, ± one standard error (shaded)."""
    rows = _rows(result, "cold_start")
    if not rows:
        return None
    figure, (ax,) = _figure(9, 5.0)
    k = np.array([number(r.get("k")) or 0.0 for r in rows], dtype=np.float64)
    for model, label, colour in _MODELS:
        means, errors = _series(rows, model)
        ax.plot(
            k, means, color=colour, marker="o", lw=2.0 if model == "omega" else 1.6, label=label
        )
        ax.fill_between(k, means - errors, means + errors, color=colour, alpha=0.15, lw=0)
    probes = number(rows[0].get("viewers"))
    ax.set_xticks(k)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("events the new TV has seen (k); it ranks the (k+1)-th title")
    ax.set_ylabel("NDCG@10, ties broken fairly")
    ax.set_title(f"Cold start: a new TV's first events ({fmt(probes, ',.0f')} held-out viewers)")
    ax.legend(loc="best", fontsize=9, framealpha=0.9)
    return _png(figure)
