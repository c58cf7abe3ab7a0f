"""``omega brain …``: work with one TV's brain directory."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from omega.cli._flags import flag_names
from omega.cli._output import console, emit, emit_rows
from omega.errors import ConfigError

app = typer.Typer(
    help="One TV's on-device brain: catalog, tracking, recommendations.", no_args_is_help=True
)

DirArg = Annotated[Path, typer.Argument(help="The brain's directory.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _open(directory: Path, *, create: bool = False):  # type: ignore[no-untyped-def]
    from omega.brain import Brain

    return Brain.open(directory, create=create)


@app.command()
def init(directory: DirArg, as_json: JsonOpt = False) -> None:
    """Create an empty brain (SQLite database + vector index) in DIRECTORY."""
    with _open(directory, create=True) as brain:
        emit(
            {"directory": str(directory), "schema_version": brain.store.schema_version},
            as_json=as_json,
            title="brain initialised",
        )


@app.command("catalog-import")
def catalog_import(
    directory: DirArg,
    catalog: Annotated[
        Path,
        typer.Argument(
            help="CSV (item_id or movieId, title, genres 'A|B', year, runtime_min, "
            "description) or JSONL with the same keys."
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Add or update titles; each is embedded with the real MiniLM model on this machine."""
    from omega.brain.catalog_file import read_catalog

    items = read_catalog(catalog)
    with _open(directory) as brain, console.status(f"embedding {len(items)} titles…"):
        count = brain.upsert_items(items)
        emit(
            {"imported": count, "items": len(brain.catalog), "codebook_id": brain.codebook_id},
            as_json=as_json,
            title="catalog",
        )


#: ``Brain.track_*``'s parameters → ``omega brain track``'s flags.
_TRACK_FLAGS = {
    "watch_fraction": "--fraction",
    "duration_s": "--duration",
    "at_seconds": "--at",
    "stars": "--stars",
}


class EventKind(StrEnum):
    view = "view"
    skip = "skip"
    rating = "rating"
    search = "search"
    browse = "browse"


@app.command()
def track(
    directory: DirArg,
    kind: Annotated[EventKind, typer.Argument(help="view | skip | rating | search | browse")],
    item: Annotated[
        str,
        typer.Argument(
            help="Item id (view, skip, rating), query (search), or comma-separated ids (browse)."
        ),
    ],
    fraction: Annotated[float | None, typer.Option(help="view: share watched, 0..1.")] = None,
    duration: Annotated[float | None, typer.Option(help="view: seconds watched.")] = None,
    completed: Annotated[bool, typer.Option(help="view: watched to the end.")] = False,
    at: Annotated[float, typer.Option(help="skip: seconds in when skipped.")] = 0.0,
    stars: Annotated[float | None, typer.Option(help="rating: 0.5..5 stars.")] = None,
    results: Annotated[str, typer.Option(help="search: comma-separated result ids.")] = "",
    selected: Annotated[str | None, typer.Option(help="search: the id chosen, if any.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record one interaction; it becomes an episode with a reward and a critique."""
    if kind is EventKind.view and fraction is None and duration is None and not completed:
        raise ConfigError("a view needs --fraction, --duration or --completed")
    with _open(directory) as brain, flag_names(_TRACK_FLAGS):
        if kind is EventKind.view:
            done = brain.track_view(
                item, watch_fraction=fraction, duration_s=duration, completed=completed
            )
        elif kind is EventKind.skip:
            done = brain.track_skip(item, at_seconds=at)
        elif kind is EventKind.rating:
            if stars is None:
                raise ConfigError("a rating needs --stars")
            done = brain.track_rating(item, stars)
        elif kind is EventKind.search:
            done = brain.track_search(item, [r for r in results.split(",") if r], selected)
        else:
            done = brain.track_browse([i for i in item.split(",") if i])
        emit(
            {
                "episode": done.episode_id,
                "kind": done.kind,
                "reward": round(done.reward, 3),
                "success": done.success,
                "critique": done.critique,
                "time_bucket": done.context.time_bucket,
                "day_type": done.context.day_type,
            },
            as_json=as_json,
            title="tracked",
        )


@app.command()
def recommend(
    directory: DirArg,
    k: Annotated[int, typer.Option("-k", help="How many titles (1 … 1000).")] = 10,
    genre: Annotated[list[str] | None, typer.Option(help="Only these genres (repeatable).")] = None,
    max_runtime: Annotated[
        int | None,
        typer.Option(help="Longest runtime in minutes (titles of unknown runtime are left out)."),
    ] = None,
    exclude: Annotated[str, typer.Option(help="Comma-separated ids to leave out.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Recommend titles not yet watched, each with a short reason.

    The score only ranks: higher is better, and the gaps between titles say how clear
    the choice was. It has no fixed scale and may be below zero (a title far from the
    years you watch, or from a kind of title you abandon, costs points)."""
    from omega.brain import Filters

    with flag_names({"k": "-k", "max_runtime_min": "--max-runtime"}):
        filters = Filters(
            genres=tuple(genre or ()),
            max_runtime_min=max_runtime,
            exclude=frozenset(e for e in exclude.split(",") if e),
        )
        with _open(directory) as brain:
            recs = brain.recommend(k, filters=filters)
            titles = len(brain.catalog)
    emit_rows(
        [
            {"item_id": r.item_id, "title": r.title, "score": round(r.score, 4), "reason": r.reason}
            for r in recs
        ],
        as_json=as_json,
        title="recommendations",
        key="recommendations",
        empty="nothing to recommend: every title is watched, skipped or filtered out"
        if titles
        else f"nothing to recommend: the catalog is empty (omega brain catalog-import {directory})",
        caption="score: higher ranks first; only the order and the gaps mean anything",
    )


@app.command()
def stats(directory: DirArg, as_json: JsonOpt = False) -> None:
    """Counts, footprint, memory tiers, skills and last sync."""
    with _open(directory) as brain:
        stats = brain.stats()
    if as_json:
        emit(stats, as_json=True)
        return
    from omega.cli._brain_stats import show_stats

    show_stats(stats, title=f"brain {directory}")


@app.command()
def export(
    directory: DirArg,
    min_quality: Annotated[
        float | None, typer.Option(help="Success-rate floor (default: the brain's, 0.7).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The patterns this brain may share: success ≥ min quality, support ≥ 3 episodes."""
    if min_quality is not None and not 0.0 <= min_quality <= 1.0:
        raise ConfigError(f"--min-quality must be within [0, 1], got {min_quality}")
    with _open(directory) as brain:
        patterns = brain.export_patterns(min_quality)
    emit_rows(
        [
            {
                "id": p.id,
                "task": p.task,
                "cells": ",".join(map(str, p.cells)),
                "context": f"{p.context.time_bucket}/{p.context.day_type}",
                "success_rate": p.success_rate,
                "support": p.support,
            }
            for p in patterns
        ],
        as_json=as_json,
        title="shareable patterns",
        key="patterns",
    )
