"""The report's PNG plots, drawn with matplotlib's Agg canvas (no pyplot, no display).

Each function returns the PNG bytes, or ``None`` when the result lacks the section the
plot needs. Figures are sized for 100 dpi (about 900×500 px).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from omega.sim._report_data import (
    BASELINE_LABELS,
    MAX_EXPOSURE_GAIN,
    MAX_NDCG_DROP,
    PULL_TARGET_BYTES,
    PUSH_TARGET_BYTES,
    fmt_share,
    number,
    quality_rows,
    section,
)

__all__ = [
    "FEW_VIEWERS",
    "attack_exposure_png",
    "bytes_per_sync_png",
    "quality_over_time_figure",
    "quality_over_time_png",
]

DPI = 100
#: A checkpoint that measured fewer viewers than this says little about the fleet's
#: quality (NDCG@10 over a handful of hold-outs swings by tenths): drawn apart.
FEW_VIEWERS = 20
_OMEGA = "#1f77b4"
_LOCAL = "#ff7f0e"
_CLEAN = "#4c9f70"
_ATTACKED = "#c44e52"
_TARGET = "#c44e52"
_REFERENCE_STYLES = {  # baseline → (colour, line style)
    "popularity": ("#7f7f7f", (0, (1, 2))),
    "item_knn": ("#9467bd", (0, (5, 2))),
    "als": ("#2ca02c", (0, (5, 2, 1, 2))),
    "transitions": ("#8c564b", (0, (8, 3))),
}


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, ncols, squeeze=False)[0]
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.set_axisbelow(True)
        ax.spines[["top", "right"]].set_visible(False)
    return figure, list(axes)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def quality_over_time_png(result: Mapping[str, Any]) -> bytes | None:
    """NDCG@10 of Omega and local-only over simulated time, final baselines as references."""
    figure = quality_over_time_figure(result)
    return None if figure is None else _png(figure)


def quality_over_time_figure(result: Mapping[str, Any]) -> Figure | None:
    """The figure of :func:`quality_over_time_png`. Each point is labelled with the
    viewers it measured (those whose hold-out came before it); a point of fewer than
    ``FEW_VIEWERS`` is drawn hollow and off the line: its NDCG is not comparable with the
    final one over the whole fleet."""
    points = _timeline(result)
    if not points:
        return None
    # datetime64 (UTC) so the axis shows calendar time, whatever span the replay covers.
    when = np.asarray([round(float(p["ts"])) for p in points], dtype="datetime64[s]")
    viewers = np.asarray([int(number(p.get("viewers")) or 0) for p in points])
    with rc_context({"date.converter": "concise"}):
        figure, (ax,) = _figure(9, 5.4)
        _draw_series(ax, when, points, viewers)
        for row in quality_rows(result):
            if row.key in ("omega", "local_only") or row.ndcg is None:
                continue
            colour, style = _REFERENCE_STYLES.get(row.key, ("#bcbd22", (0, (3, 3))))
            label = f"{BASELINE_LABELS.get(row.key, row.key)}, final {row.ndcg:.4f}"
            ax.axhline(row.ndcg, color=colour, ls=style, lw=1.4, label=label)
        ax.set_ylim(bottom=0)
        ax.margins(y=0.12)  # room for the viewer counts above the points
        ax.set_xlabel("simulated time (UTC); n: viewers measured at that point")
        ax.set_ylabel("NDCG@10 (hold-out, full ranking)")
        ax.set_title(
            "Recommendation quality over simulated time\n"
            f"{_dataset_name(result)}, {viewers[-1]:,} viewers at the end",
            wrap=True,
        )
        ax.legend(loc="best", fontsize=9, framealpha=0.9)
        return figure


def _draw_series(
    ax: Axes, when: npt.NDArray[Any], points: list[Mapping[str, Any]], viewers: npt.NDArray[Any]
) -> None:
    """Omega's and local-only's NDCG, a point of few viewers hollow and off the line."""
    few = viewers < FEW_VIEWERS
    for key, colour, width, label in (
        ("omega_ndcg@10", _OMEGA, 2.2, "Omega"),
        ("local_only_ndcg@10", _LOCAL, 1.8, BASELINE_LABELS["local_only"]),
    ):
        values = np.asarray([np.nan if (v := number(p.get(key))) is None else v for p in points])
        ax.plot(when[~few], values[~few], color=colour, lw=width, marker="o", label=label)
        if few.any():
            ax.plot(when[few], values[few], ls="none", marker="o", mfc="white", color=colour)
        if key == "omega_ndcg@10":
            _label_viewers(ax, when, values, viewers)
    if few.any():
        note = f"fewer than {FEW_VIEWERS} viewers measured: not comparable"
        ax.plot([], [], ls="none", marker="o", mfc="white", color="dimgray", label=note)


def _timeline(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    timeline = result.get("timeline")
    if not isinstance(timeline, list):
        return []
    return sorted(
        (p for p in timeline if isinstance(p, Mapping) and number(p.get("ts")) is not None),
        key=lambda p: float(p["ts"]),
    )


def _label_viewers(
    ax: Axes, when: npt.NDArray[Any], values: npt.NDArray[Any], viewers: npt.NDArray[Any]
) -> None:
    for x, y, n in zip(when, values, viewers, strict=True):
        if np.isfinite(y):
            ax.annotate(
                f"n={n:,}",
                (x, y),
                xytext=(0, 7),
                textcoords="offset points",
                ha="center",
                fontsize=8,
                color="dimgray",
            )


def bytes_per_sync_png(result: Mapping[str, Any]) -> bytes | None:
    """Histograms of push and pull sizes per sync with the 1 KB / 5 KB targets."""
    sizes = section(result, "sync_bytes")
    sides: list[tuple[str, int, npt.NDArray[np.float64]]] = []
    for side, target in (("push", PUSH_TARGET_BYTES), ("pull", PULL_TARGET_BYTES)):
        raw = sizes.get(side)
        kept = [v for v in map(number, np.ravel(raw)) if v is not None] if raw is not None else []
        if kept:
            sides.append((side, target, np.asarray(kept, dtype=np.float64)))
    if not sides:
        return None
    figure, axes = _figure(5 * len(sides), 4.5, ncols=len(sides))
    for ax, (side, target, values) in zip(axes, sides, strict=True):
        ax.hist(values, bins=min(30, max(5, len(np.unique(values)))), color=_OMEGA, alpha=0.8)
        median = float(np.median(values))
        ax.axvline(median, color="black", ls=":", lw=1.5, label=f"median {median:,.0f} B")
        ax.axvline(target, color=_TARGET, ls="--", lw=1.8, label=f"target ≤ {target // 1024} KB")
        ax.set_xlim(left=0)
        ax.set_xlabel(f"{side} size per sync (bytes on the wire)")
        ax.set_ylabel("syncs")
        ax.set_title(f"{side.capitalize()} — {len(values):,} syncs")
        ax.legend(loc="best", fontsize=9, framealpha=0.9)
    figure.suptitle("Bytes per sync")
    return _png(figure)


def attack_exposure_png(result: Mapping[str, Any]) -> bytes | None:
    """Target exposure and NDCG@10, clean vs attacked, against the allowed limits."""
    attack = section(result, "attack")
    panels = []
    for key, title, limit, limit_label in (
        ("target_exposure", "Target exposure", MAX_EXPOSURE_GAIN, "limit: 2× clean"),
        ("ndcg@10", "NDCG@10", 1 - MAX_NDCG_DROP, f"limit: −{MAX_NDCG_DROP:.0%}"),
    ):
        clean = number(attack.get(f"{key}_clean"))
        hit = number(attack.get(f"{key}_attacked"))
        if clean is not None and hit is not None:
            panels.append((title, clean, hit, limit * clean, limit_label))
    if not panels:
        return None
    figure, axes = _figure(4.5 * len(panels), 4.5, ncols=len(panels))
    for ax, (title, clean, hit, limit, limit_label) in zip(axes, panels, strict=True):
        bars = ax.bar(["clean", "attacked"], [clean, hit], color=[_CLEAN, _ATTACKED], width=0.55)
        ax.bar_label(bars, labels=[f"{clean:.4f}", f"{hit:.4f}"], padding=3)
        ax.axhline(limit, color="black", ls="--", lw=1.3, label=limit_label)
        ax.set_ylim(0, max(clean, hit, limit) * 1.2 or 1.0)
        ax.set_ylabel("share of top-10 lists" if title.startswith("Target") else title)
        ax.set_title(title)
        ax.legend(loc="upper left", fontsize=9)
    kind = attack.get("kind") or "attack"
    target = attack.get("target_title") or attack.get("target_item") or ""
    share = fmt_share(number(attack.get("attackers")))
    heading = f"Attack: {kind}, {share} attackers"
    figure.suptitle(f"{heading}\ntarget: {target}" if target else heading)
    return _png(figure)


def _dataset_name(result: Mapping[str, Any]) -> str:
    name = str(result.get("dataset") or "simulation").rstrip("/")
    return name.rsplit("/", 1)[-1]
