"""A new TV process, timed: ``python -m omega.bench._fresh_tv BRAIN_DIR``.

``omega bench brain`` (``omega.bench.brain.fresh_process_figures``) runs it in a fresh
interpreter to see what a TV pays to start and what it then holds: the cold start
(importing the brain, loading the model, opening the brain), the resident set size after
one recommendation and one embedding, and the warm start (opening it again). It imports
only the brain, never the benchmarks, so their modules do not count in its figures. One
JSON line on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

__all__ = ["main", "rss_mb"]


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size of process ``pid`` (this one by default) now, from /proc (Linux);
    NaN where there is none."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def main() -> None:
    directory = sys.argv[1]
    start = time.perf_counter()
    from omega.brain import Brain
    from omega.brain.embedder import Embedder

    embedder = Embedder.load()
    brain = Brain.open(directory, embedder=embedder, create=False)
    cold = time.perf_counter() - start
    brain.recommend(10)
    embedder.embed_one("The Matrix")
    rss = rss_mb()
    brain.close()
    start = time.perf_counter()
    brain = Brain.open(directory, embedder=embedder, create=False)
    warm = time.perf_counter() - start
    brain.close()
    print(json.dumps({"cold_start_s": cold, "warm_start_s": warm, "rss_mb": rss}))


if __name__ == "__main__":
    main()
