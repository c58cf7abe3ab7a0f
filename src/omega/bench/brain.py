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

from omega.brain import Brain, BrainConfig
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


@dataclasses.dataclass(frozen=True)
class _Catalog:
    """The synthetic catalog as imported: its ids and vectors, and what importing cost."""

    ids: list[str]
    matrix: np.ndarray
    figures: dict[str, float]


def _import_catalog(
    brain: Brain, embedder: Embedder | None, *, catalog: int, mode: str, seed: int
) -> _Catalog:
    """Make ``catalog`` synthetic titles, give them vectors (``mode``: the ``embedder``'s
    for "model", else clustered synthetic ones), upsert them."""
    titles = synthetic_titles(catalog, seed=seed)
    plain = [t.catalog_item(description=True) for t in titles]
    start = time.perf_counter()
    if mode == "model":
        assert embedder is not None, "model vectors need the embedder"
        matrix = embedder.embed([item_text(i) for i in plain])
    else:
        matrix = clustered_vectors(catalog, seed=seed)
    vectors_s = time.perf_counter() - start
    items = [dataclasses.replace(item, embedding=matrix[i]) for i, item in enumerate(plain)]
    start = time.perf_counter()
    for lo in range(0, len(items), 5_000):
        brain.upsert_items(items[lo : lo + 5_000])
    import_s = time.perf_counter() - start
    figures = {"catalog_vectors_s": round(vectors_s, 2), "catalog_import_s": round(import_s, 2)}
    return _Catalog([t.item_id for t in titles], matrix, figures)


class _Household:
    """Watches, skips, rates and searches around 200 favourite titles, drawn from ``rng``."""

    def __init__(
        self, brain: Brain, clock: ManualClock, rng: np.random.Generator, ids: list[str]
    ) -> None:
        self.brain, self.clock, self.rng, self.ids = brain, clock, rng, ids
        self.favourite = rng.choice(len(ids), size=min(len(ids), 200), replace=False)

    def event(self, *, gap: tuple[int, int] = (60, 4 * 3600)) -> None:
        """One tracked event, a drawn ``gap`` of seconds after the last."""
        brain, rng = self.brain, self.rng
        self.clock.advance(float(rng.integers(*gap)))
        item = self.ids[int(self.favourite[int(rng.integers(len(self.favourite)))])]
        roll = rng.random()
        if roll < 0.7:
            brain.track_view(item, watch_fraction=float(rng.uniform(0.0, 1.0)))
        elif roll < 0.8:
            brain.track_skip(item, at_seconds=float(rng.uniform(0, 600)))
        elif roll < 0.9:
            brain.track_rating(item, float(rng.integers(1, 11)) / 2.0)
        else:
            brain.track_search("space adventure", [item], selected=item)


def _observe_figures(household: _Household, observed: int = 2_000) -> dict[str, float]:
    """Durable tracked events per second."""
    start = time.perf_counter()
    for _ in range(observed):
        # A busy session (events seconds apart): this measures tracking itself; the daily
        # and weekly consolidation loops run on their own schedule, not per event.
        household.event(gap=(1, 10))
    household.brain.flush()
    return {"observe_per_s": round(observed / (time.perf_counter() - start), 1)}


def _recommend_figures(brain: Brain, calls: int) -> dict[str, float]:
    """``recommend(10)`` latency over ``calls`` calls on an unchanged brain (a home screen
    redrawn: the brain keeps the last index searches until the catalog changes)."""
    ms = _timed(calls, lambda _: brain.recommend(10))
    return {
        "recommend_p50_ms": round(statistics.median(ms), 3),
        "recommend_p99_ms": round(_percentile(ms, 99), 3),
        "recommend_calls": calls,
    }


def _fresh_recommend_figures(
    household: _Household, rounds: int, rng: np.random.Generator
) -> dict[str, float]:
    """``recommend(10)`` right after a new title is watched: what a TV pays when the
    household has just acted (the tiers' tastes and the recent titles changed, so little
    of the last ranking's work can be reused). Only the recommend is timed."""
    brain = household.brain
    unseen = np.setdiff1d(np.arange(len(household.ids)), household.favourite)
    pool = unseen if len(unseen) else np.arange(len(household.ids))  # a tiny catalog: rewatch
    picks = rng.choice(pool, size=min(rounds, len(pool)), replace=False)
    ms = []
    for i in picks.tolist():
        household.clock.advance(float(rng.integers(60, 1800)))
        brain.track_view(household.ids[i], watch_fraction=float(rng.uniform(0.8, 1.0)))
        start = time.perf_counter()
        brain.recommend(10)
        ms.append((time.perf_counter() - start) * 1000.0)
    return {
        "recommend_after_event_p50_ms": round(statistics.median(ms), 3),
        "recommend_after_event_p99_ms": round(_percentile(ms, 99), 3),
        "recommend_after_event_calls": len(ms),
    }


def _search_figures(
    brain: Brain, matrix: np.ndarray, rng: np.random.Generator, *, calls: int
) -> dict[str, float]:
    """The title index's latency on noisy catalog vectors, and its recall@10 against
    exact search."""
    queries = matrix[rng.choice(len(matrix), size=min(calls, len(matrix)), replace=False)]
    queries = queries + rng.normal(0, 0.05, size=queries.shape).astype(np.float32)
    ms = _timed(len(queries), lambda i: brain.titles.index.search(queries[i], 10))
    recalls = []
    for q in queries[:200]:
        approx, _ = brain.titles.index.search(q, 10)
        exact, _ = brain.titles.index.search_exact(q, 10)
        recalls.append(len(set(approx.tolist()) & set(exact.tolist())) / 10.0)
    return {
        "search_p50_ms": round(statistics.median(ms), 4),
        "search_p99_ms": round(_percentile(ms, 99), 4),
        "search_recall_at_10": round(float(np.mean(recalls)), 4),
    }


def _embed_figures(embedder: Embedder) -> dict[str, float]:
    """One short title through the model (warmed up first)."""
    for _ in range(5):
        embedder.embed_one("The Matrix")
    ms = _timed(200, lambda i: embedder.embed_one(f"Star Trek {i}"))
    return {"embed_ms": round(statistics.median(ms), 3)}


def _footprint_figures(
    brain: Brain, clock: ManualClock, rng: np.random.Generator, patterns: int
) -> dict[str, float]:
    """Fill the pattern bank to ``patterns`` (random transitions); the store's size."""
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
    return {
        "footprint_bytes": brain.store.footprint_bytes(exclude_catalog=True),
        "footprint_patterns": len(brain.learner.bank),
    }


def _load_cowatch(brain: Brain, ids: list[str], neighbours: int, seed: int) -> dict[str, float]:
    """A released co-watch table of ``neighbours`` per title (random neighbours, counts
    3–99) applied in pages of 500 titles, as pulls would deliver it: what it occupies in
    memory (the scoring matrix, with the backward edges) and on disk."""
    if neighbours < 1:
        return {"cowatch_neighbours": 0}
    from omega.brain.sync_state import CATALOG_ORDER_CURSOR

    rng = np.random.default_rng(seed)
    brain.sync.set_cursors({CATALOG_ORDER_CURSOR: json.dumps(ids)})
    before = brain.store.footprint_bytes(exclude_catalog=True)
    n = len(ids)
    for start in range(0, n, 500):
        page = []
        for source in range(start, min(n, start + 500)):
            found = rng.choice(n, neighbours, replace=False).tolist()
            counts = rng.integers(3, 100, neighbours).tolist()
            page.append((source, list(zip(found, counts, strict=True))))
        brain.apply_cowatch(1 + start // 500, page)
    table = brain.cowatch.matrix(brain.catalog)
    return {
        "cowatch_neighbours": neighbours,
        "cowatch_memory_bytes": table.nbytes if table is not None else 0,
        "cowatch_disk_bytes": brain.store.footprint_bytes(exclude_catalog=True) - before,
    }


def _fresh_figures(directory: Path) -> dict[str, float]:
    fresh = fresh_process_figures(directory)
    return {
        "rss_mb": round(fresh["rss_mb"], 1),
        "cold_start_s": round(fresh["cold_start_s"], 3),
        "warm_start_s": round(fresh["warm_start_s"], 3),
    }


def run_brain_bench(
    *,
    catalog: int = 10_000,
    events: int = 500,
    patterns: int = 10_000,
    calls: int = 1_000,
    vectors: str = "auto",
    seed: int = 0,
    cowatch: int = 20,
    progress: Callable[[str], None] | None = None,
) -> dict[str, object]:
    """Build a brain, replay a history, and measure it. ``vectors``: model | clustered | auto
    (auto = the real model up to 20,000 titles, clustered synthetic vectors above);
    ``cowatch``: neighbours per title of the co-watch table loaded first (0: none). The
    brain lives in a temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="omega-bench-brain-") as tmp:
        workdir = Path(tmp)
        say = progress or (lambda _: None)
        rng = np.random.default_rng(seed)  # one stream, drawn in the order of the phases
        mode = vectors if vectors != "auto" else ("model" if catalog <= 20_000 else "clustered")
        clock = ManualClock(1_700_000_000.0)

        say("loading the model and opening a new brain")
        embedder = Embedder.load()
        brain = Brain.open(workdir / "tv", clock=clock, config=BrainConfig(), embedder=embedder)
        say(f"catalog: {catalog} titles ({mode} vectors)")
        imported = _import_catalog(brain, embedder, catalog=catalog, mode=mode, seed=seed)
        say(f"co-watch table: {cowatch} neighbours per title")
        table = _load_cowatch(brain, imported.ids, cowatch, seed + 2)
        say(f"history: {events} events")
        household = _Household(brain, clock, rng, imported.ids)
        for _ in range(events):
            household.event()
        say("observe: durable tracked events per second")
        observe = _observe_figures(household)
        say(f"recommend: {calls} calls, k=10")
        recommend = _recommend_figures(brain, calls)
        say("recommend after an event: a new title watched, then one call")
        # Its own stream: the phases after it draw what they drew before it was added.
        recommend |= _fresh_recommend_figures(
            household, min(calls, 200), np.random.default_rng(seed + 1)
        )
        say("search: index vs exact")
        search = _search_figures(brain, imported.matrix, rng, calls=calls)
        say("embed: one short title through the model")
        embed = _embed_figures(embedder)
        say(f"footprint: filling the bank to {patterns} patterns")
        footprint = _footprint_figures(brain, clock, rng, patterns)
        brain.close()
        say("cold start, warm start and RSS in a fresh TV process")
        fresh = _fresh_figures(workdir / "tv")

        return {
            "catalog_size": catalog,
            "vectors": mode,
            "events": events,
            **recommend,
            **search,
            **observe,
            **embed,
            **footprint,
            **fresh,
            **imported.figures,
            **table,
        }
