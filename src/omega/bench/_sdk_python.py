"""The Python side of ``omega bench sdk``, in a process of its own as the C side is:
``python -m omega.bench._sdk_python BRAIN_DIR CALLS WARMUP K``.

A TV process written in Python: it opens the brain the bench made and times
``Brain.recommend(k)`` as ``bench.c`` times ``omega_recommend`` (warm-up calls first).
It imports only the brain. One JSON line on stdout: each timed call (ns) and the
process's resident memory (kB).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

__all__ = ["main"]


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return -1


def main() -> None:
    directory, calls, warmup, k = sys.argv[1], *map(int, sys.argv[2:5])
    from omega.brain import Brain

    timed = []
    with Brain.open(directory, create=False) as brain:
        for n in range(warmup + calls):
            start = time.perf_counter_ns()
            brain.recommend(k)
            if n >= warmup:
                timed.append(time.perf_counter_ns() - start)
        figures = {
            "recommend_ns": timed,
            "rss_kb": _status_kb("VmRSS:"),
            "peak_rss_kb": _status_kb("VmHWM:"),
        }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
