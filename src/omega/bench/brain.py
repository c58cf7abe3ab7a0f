"""``omega bench brain``: every figure comes from running the real operation here."""

from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from omega.brain import Brain, BrainConfig, CatalogItem
from omega.brain.catalog import item_text
from omega.brain.embedder import Embedder
from omega.clock import ManualClock
from omega.sim.synthetic import clustered_vectors, synthetic_titles

__all__ = ["fresh_process_figures", "run_brain_bench"]


def fresh_process_figures(directory: Path) -> dict[str, float]:
    """Cold start (imports + model + open), warm start and RSS of a new TV process."""
    done = subprocess.run(
        [sys.executable, "-m", "omega.bench._fresh_tv", str(directory)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def _timed(calls: int, fn: Callable[[int], object]) -> list[float]:
    out = []
    for i in range(calls):
        start = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def run_brain_bench(
    *,
    catalog: int = 10_000,
    events: int = 500,
    patterns: int = 10_000,
    calls: int = 1_000,
    vectors: str = "auto",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, object]:
    """Build a brain, replay a history, and measure it. ``vectors``: model | clustered | auto
    (auto = the real model up to 20,000 titles, clustered synthetic vectors above)."""
    say = progress or (lambda _: None)
    rng = np.random.default_rng(seed)
    mode = vectors if vectors != "auto" else ("model" if catalog <= 20_000 else "clustered")
    workdir = Path(tempfile.mkdtemp(prefix="omega-bench-brain-"))
    clock = ManualClock(1_700_000_000.0)
    config = BrainConfig()

    say("loading the model and opening a new brain")
    embedder = Embedder.load()
    brain = Brain.open(workdir / "tv", clock=clock, config=config, embedder=embedder)

    titles = synthetic_titles(catalog, seed=seed)
    plain = [
        CatalogItem(
            item_id=t.item_id,
            title=t.title,
            genres=t.genres,
            year=t.year,
            runtime_min=t.runtime_min,
            description=t.description,
        )
        for t in titles
    ]
    say(f"catalog: {catalog} titles ({mode} vectors)")
    start = time.perf_counter()
    if mode == "model":
        matrix = embedder.embed([item_text(i) for i in plain])
    else:
        matrix = clustered_vectors(catalog, seed=seed)
    embed_catalog_s = time.perf_counter() - start
    items = [dataclasses.replace(item, embedding=matrix[i]) for i, item in enumerate(plain)]
    start = time.perf_counter()
    for lo in range(0, len(items), 5_000):
        brain.upsert_items(items[lo : lo + 5_000])
    import_s = time.perf_counter() - start

    say(f"history: {events} events")
    ids = [t.item_id for t in titles]
    favourite = rng.choice(len(ids), size=min(len(ids), 200), replace=False)

    def one_event(i: int, *, gap: tuple[int, int] = (60, 4 * 3600)) -> None:
        clock.advance(float(rng.integers(*gap)))
        item = ids[int(favourite[int(rng.integers(len(favourite)))])]
        roll = rng.random()
        if roll < 0.7:
            brain.track_view(item, watch_fraction=float(rng.uniform(0.0, 1.0)))
        elif roll < 0.8:
            brain.track_skip(item, at_seconds=float(rng.uniform(0, 600)))
        elif roll < 0.9:
            brain.track_rating(item, float(rng.integers(1, 11)) / 2.0)
        else:
            brain.track_search("space adventure", [item], selected=item)

    for i in range(events):
        one_event(i)

    say("observe: durable tracked events per second")
    observed = 2_000
    start = time.perf_counter()
    for i in range(observed):
        # A busy session (events seconds apart): this measures tracking itself; the daily
        # and weekly consolidation loops run on their own schedule, not per event.
        one_event(i, gap=(1, 10))
    brain.flush()
    observe_per_s = observed / (time.perf_counter() - start)

    say(f"recommend: {calls} calls, k=10")
    rec_ms = _timed(calls, lambda _: brain.recommend(10))

    say("search: index vs exact")
    queries = matrix[rng.choice(len(matrix), size=min(calls, len(matrix)), replace=False)]
    queries = queries + rng.normal(0, 0.05, size=queries.shape).astype(np.float32)
    search_ms = _timed(len(queries), lambda i: brain.titles.index.search(queries[i], 10))
    recalls = []
    for q in queries[:200]:
        approx, _ = brain.titles.index.search(q, 10)
        exact, _ = brain.titles.index.search_exact(q, 10)
        recalls.append(len(set(approx.tolist()) & set(exact.tolist())) / 10.0)

    say("embed: one short title through the model")
    for _ in range(5):
        embedder.embed_one("The Matrix")
    embed_ms = _timed(200, lambda i: embedder.embed_one(f"Star Trek {i}"))

    say(f"footprint: filling the bank to {patterns} patterns")
    k = brain.titles.k or 1
    guard = 0
    while len(brain.learner.bank) < patterns and guard < patterns * 20:
        guard += 1
        a, b = (int(x) for x in rng.integers(0, k, size=2))
        brain.learner.bank.learn(
            cell=b,
            previous_cell=a,
            success=bool(rng.random() < 0.8),
            negative=False,
            bucket="evening",
            day="weekday",
            now=clock.now(),
        )
    brain.flush()
    footprint = brain.store.footprint_bytes(exclude_catalog=True)
    pattern_count = len(brain.learner.bank)

    brain.close()
    say("cold start, warm start and RSS in a fresh TV process")
    fresh = fresh_process_figures(workdir / "tv")

    return {
        "catalog_size": catalog,
        "vectors": mode,
        "events": events,
        "recommend_p50_ms": round(statistics.median(rec_ms), 3),
        "recommend_p99_ms": round(_percentile(rec_ms, 99), 3),
        "recommend_calls": calls,
        "search_p50_ms": round(statistics.median(search_ms), 4),
        "search_p99_ms": round(_percentile(search_ms, 99), 4),
        "search_recall_at_10": round(float(np.mean(recalls)), 4),
        "observe_per_s": round(observe_per_s, 1),
        "embed_ms": round(statistics.median(embed_ms), 3),
        "footprint_bytes": footprint,
        "footprint_patterns": pattern_count,
        "rss_mb": round(fresh["rss_mb"], 1),
        "cold_start_s": round(fresh["cold_start_s"], 3),
        "warm_start_s": round(fresh["warm_start_s"], 3),
        "catalog_vectors_s": round(embed_catalog_s, 2),
        "catalog_import_s": round(import_s, 2),
        "workdir": str(workdir),
    }
