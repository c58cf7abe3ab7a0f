"""``/metrics`` for all the server processes of one host: prometheus-client's
multiprocess mode.

With ``uvicorn --workers N`` (or several ``omega serve`` processes on one host) a scrape
reaches one process, which alone would report only its own counts. When
``PROMETHEUS_MULTIPROC_DIR`` names a directory (prometheus-client reads it when it is
first imported: set it before the servers start, and empty it before each start), every
process writes its metrics to files there and any process's ``/metrics`` reports the
sum of all of them: counters and histograms added up, ``omega_sse_clients`` summed over
the live processes, ``omega_release_version`` the greatest. Replicas on other hosts are
scraped each, as usual, and summed in Prometheus.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, generate_latest, multiprocess

from omega.constellation.metrics import Metrics

__all__ = ["MULTIPROC_ENV", "forget_this_process", "render"]

#: prometheus-client's own variable (read at its import).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _shared() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def render(metrics: Metrics) -> bytes:
    """The exposition text: every process's metrics in multiprocess mode, else this one's."""
    if not _shared():
        return metrics.render()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def forget_this_process() -> None:
    """At shutdown: drop this process's live gauges (its SSE clients) from the sums."""
    if _shared():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
