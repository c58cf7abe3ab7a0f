"""``omega bench sdk``: the C SDK against the Python API on one brain, in one run.

The bench builds libomega.so (``omega sdk build``) and its C bench program
(``omega/sdk/c/bench.c``) into a temporary directory, makes a brain of synthetic
titles (clustered vectors: no model needed) with a household's history, and then,
``rounds`` times, alternating (so that a busy moment of the machine hits both paths):

- runs the C program in its own process — a TV firmware's: the library starts the
  interpreter at its first call — which reports how long its first calls took (the
  interpreter starting and importing Omega, the brain opening, the first
  recommendation, the first title embedded, i.e. the model loading), each timed
  ``omega_recommend``, and its resident memory before and after the model loaded;
- runs a Python TV process (``python -m omega.bench._sdk_python``) that opens the same
  brain and times ``Brain.recommend`` as many times, after as many warm-up calls.

Both paths rank the same brain with the same ``k``; the difference is the C path's
cost: the call into the interpreter, the handle, and the results copied into the
caller's buffers. The target is the C path's p99 within 1.2× Python's plus 0.2 ms.
Latencies pool every round's calls; first calls and memory are the first round's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from omega.brain import Brain
from omega.errors import InputError
from omega.sdk import build_sdk, compile_program
from omega.sdk.build import SOURCES
from omega.sim.synthetic import clustered_vectors, synthetic_titles

__all__ = ["run_sdk_bench"]

#: The target: the C path's p99 at most this many times Python's, plus SLACK_MS.
RATIO, SLACK_MS = 1.2, 0.2


def _percentiles(ms: list[float]) -> dict[str, float]:
    values = np.array(ms)
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 4),
        "p99_ms": round(float(np.percentile(values, 99)), 4),
    }


def _make_brain(directory: Path, *, titles: int, events: int, seed: int) -> None:
    """``titles`` synthetic titles and ``events`` views of a household's favourites."""
    made = synthetic_titles(titles, seed=seed)
    vectors = clustered_vectors(titles, seed=seed)
    items = [t.catalog_item(embedding=vectors[n]) for n, t in enumerate(made)]
    rng = np.random.default_rng(seed)
    favourites = rng.choice(titles, size=min(titles, 200), replace=False)
    with Brain.open(directory) as brain:
        brain.upsert_items(items)
        for _ in range(events):
            item = made[int(favourites[int(rng.integers(len(favourites)))])]
            brain.track_view(item.item_id, watch_fraction=float(rng.uniform(0.05, 1.0)))


def _run(command: list[str], what: str) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise InputError(f"the {what} failed: {done.stderr.strip()[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def run_sdk_bench(
    *,
    titles: int = 10_000,
    events: int = 300,
    calls: int = 2_000,
    warmup: int = 200,
    k: int = 10,
    rounds: int = 2,
    seed: int = 0,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Build, make the brain, run both paths; every figure measured here."""
    if titles < 100 or events < 1 or calls < 10 or warmup < 0 or rounds < 1:
        raise InputError("titles ≥ 100, events ≥ 1, calls ≥ 10, warmup ≥ 0, rounds ≥ 1")
    if not 1 <= k <= 100:
        raise InputError(f"k must be within 1..100, got {k}")
    with tempfile.TemporaryDirectory(prefix="omega-bench-sdk-") as tmp:
        work = Path(tmp)
        progress("building libomega.so and the C bench…")
        start = time.perf_counter()
        built = build_sdk(work / "sdk")
        build_s = time.perf_counter() - start
        bench = compile_program(SOURCES / "bench.c", work / "bench", work / "sdk")
        progress(f"making a brain of {titles} titles…")
        _make_brain(work / "brain", titles=titles, events=events, seed=seed)
        args = [str(work / "brain"), str(calls), str(warmup), str(k)]
        c_runs, python_runs = [], []
        for n in range(rounds):  # alternating, so that a busy moment hits both paths
            progress(f"round {n + 1}/{rounds}: {calls} recommendations from C, then Python…")
            c_runs.append(_run([str(bench), *args], "C bench"))
            python_command = [sys.executable, "-m", "omega.bench._sdk_python", *args]
            python_runs.append(_run(python_command, "Python bench"))
        library_bytes = built.library.stat().st_size
    c_side = c_runs[0] | {
        key: [ns for run in c_runs for ns in run[key]] for key in ("recommend_ns", "setter_ns")
    }
    python = python_runs[0] | {
        "recommend_ns": [ns for run in python_runs for ns in run["recommend_ns"]]
    }
    return _figures(c_side, python, build_s=build_s, library_bytes=library_bytes) | {
        "titles": titles,
        "events": events,
        "calls": calls * rounds,
        "rounds": rounds,
        "k": k,
    }


def _figures(
    c_side: dict[str, Any], python: dict[str, Any], *, build_s: float, library_bytes: int
) -> dict[str, Any]:
    c = _percentiles([ns / 1e6 for ns in c_side["recommend_ns"]])
    setter_us = 1000 * _percentiles([ns / 1e6 for ns in c_side["setter_ns"]])["p50_ms"]
    py = _percentiles([ns / 1e6 for ns in python["recommend_ns"]])
    limit = RATIO * py["p99_ms"] + SLACK_MS
    return {
        "c_recommend_p50_ms": c["p50_ms"],
        "c_recommend_p99_ms": c["p99_ms"],
        "python_recommend_p50_ms": py["p50_ms"],
        "python_recommend_p99_ms": py["p99_ms"],
        "c_overhead_p50_ms": round(c["p50_ms"] - py["p50_ms"], 4),
        # One trivial call from C (a setter): what crossing into the library costs.
        "c_call_p50_us": round(setter_us, 1),
        "target_p99_ms": round(limit, 4),
        "within_target": c["p99_ms"] <= limit,
        # The first calls of a TV process: interpreter start and Omega's import, the
        # brain's open (warm start), the first recommendation, the model's load (the
        # first title embedded on the TV).
        "first_call_ms": round(c_side["config_new_ms"], 1),
        "brain_open_ms": round(c_side["brain_open_ms"], 1),
        "first_recommend_ms": round(c_side["first_recommend_ms"], 1),
        "model_load_and_first_embed_ms": round(c_side["first_import_ms"], 1),
        "c_host_rss_before_model_mb": round(c_side["rss_before_model_kb"] / 1024, 1),
        "c_host_rss_mb": round(c_side["rss_kb"] / 1024, 1),
        "c_host_peak_rss_mb": round(c_side["peak_rss_kb"] / 1024, 1),
        "python_host_rss_mb": round(python["rss_kb"] / 1024, 1),
        "library_bytes": library_bytes,
        "build_s": round(build_s, 2),
    }
