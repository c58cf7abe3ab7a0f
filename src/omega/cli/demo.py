"""``omega demo``: the README's main command — runs on embedded defaults, no servers."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from omega.cli._output import console, emit, emit_rows

__all__ = ["register"]


def demo(
    titles: Annotated[int, typer.Option(help="Synthetic catalog size.")] = 2_000,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where to keep the brain (default: a temp dir).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Build a brain on a synthetic catalog, replay a viewer's evening and recommend.

    Everything is real: the MiniLM model embeds every title, the brain is a SQLite file
    plus a usearch index, and each recommendation carries its reason."""
    import numpy as np

    from omega.brain import Brain, CatalogItem
    from omega.clock import ManualClock
    from omega.sim.synthetic import synthetic_titles

    directory = data_dir or Path(tempfile.mkdtemp(prefix="omega-demo-"))
    clock = ManualClock(1_700_000_000.0)
    rng = np.random.default_rng(seed)
    catalog = synthetic_titles(titles, seed=seed)
    with Brain.open(directory / "tv", clock=clock) as brain:
        with console.status(f"embedding {titles} titles with all-MiniLM-L6-v2…"):
            brain.upsert_items(
                [
                    CatalogItem(
                        item_id=t.item_id,
                        title=t.title,
                        genres=t.genres,
                        year=t.year,
                        runtime_min=t.runtime_min,
                        description=t.description,
                    )
                    for t in catalog
                ]
            )
        cold = brain.recommend(5)
        # A viewer who loves one genre: finish those, abandon others.
        favourite = catalog[0].genres[0] if catalog[0].genres else ""
        liked = [t for t in catalog if favourite in t.genres]
        other = [t for t in catalog if favourite not in t.genres]
        history = []
        for step in range(12):
            clock.advance(float(rng.integers(600, 3600)))
            if step % 3 == 2 and other:
                t = other[int(rng.integers(len(other)))]
                brain.track_view(t.item_id, watch_fraction=0.05)
                history.append((t.title, "abandoned"))
            else:
                t = liked[int(rng.integers(len(liked)))]
                brain.track_view(t.item_id, watch_fraction=1.0, completed=True)
                history.append((t.title, "watched"))
        warm = brain.recommend(10)
        stats = brain.stats()
    recommendations = [
        {"title": r.title, "score": round(r.score, 3), "reason": r.reason} for r in warm
    ]
    result = {
        "directory": str(directory),
        "favourite_genre": favourite,
        "history": [f"{verb}: {title}" for title, verb in history],
        "cold_start": [f"{r.title} — {r.reason}" for r in cold],
        "recommendations": [
            {"title": r.title, "score": round(r.score, 3), "reason": r.reason} for r in warm
        ],
        "patterns": stats["patterns"],
        "shareable_patterns": stats["shareable_patterns"],
        "footprint_bytes": stats["footprint_bytes"],
    }
    if as_json:
        emit(result, as_json=True)
        return
    console.print(f"[bold]Brain[/] in {directory} — a viewer who loves [cyan]{favourite}[/]")
    emit_rows(
        [{"event": f"{verb}: {title}"} for title, verb in history],
        as_json=False,
        title="replayed history",
    )
    emit_rows(recommendations, as_json=False, title="recommendations")
    console.print(
        f"patterns learned: {stats['patterns']} ({stats['shareable_patterns']} shareable), "
        f"state on disk: {stats['footprint_bytes']:,} bytes"
    )


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
