"""Where a sync's server CPU goes, by stage: ``omega bench server --profile``.

py-spy (a sampling profiler, the ``dev`` extra) is attached to the running server for the
steps after the fleet registered, in ``--gil`` mode: it samples the thread holding the
GIL (pausing the server ~0.1 ms a sample, for a consistent stack), so each sample is
Python work on some thread (the event loop, SQLite's writer, a PostgreSQL worker thread),
never a thread waiting for a socket, a lock or an fsync. Each sample's stack is put in the
first :data:`STAGES` entry whose marker it contains. A stage's share of the samples, times
the server's CPU per sync measured from ``/proc`` over the same steps, is its estimated
cost per sync. (Wall time with the GIL is not CPU time on a busy machine, where a thread
holding it may wait for a core, so shares are what the samples give; native work done
without the GIL counts with the stage whose Python frames it runs under, as sampled.)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from omega.errors import ConfigError

__all__ = ["STAGES", "Profiler", "stage_report"]

#: (stage, markers): a sample belongs to the first stage one of whose markers ("function
#: (file" as py-spy prints frames) is in its stack. Order matters: inner stages first.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("auth + rate limit", ("require_viewer (", "require_admin (")),
    ("decode request", ("read_request (", "read_message (")),
    ("review push", ("_prepare (omega/constellation/exchange.py",)),
    ("store push", ("ingest (", "ingest_async (", "_ingest_job (", "_commit_group (")),
    ("pull: read + fit", ("pull (omega/constellation/exchange.py", "_fit (")),
    ("seal + encode answer", ("sealed_reply (", "reply (omega/constellation/_wire.py")),
    ("sync route (rest)", ("sync (omega/constellation/routes/sync.py",)),
    # The gRPC and HTTP/3 doors hand the app each request through call_app, uvicorn
    # through run_asgi: what is under either and no stage above is the framework's.
    ("framework: routing, middleware, dependencies", ("run_asgi (", "call_app (")),
    ("rounds, releases, events", ("omega/constellation/rounds.py", "omega/federation/")),
    ("QUIC and HTTP/3: packets, their crypto, QPACK (aioquic)", ("aioquic/",)),
    ("event loop, HTTP parsing, sockets", ("uvloop", "httptools_impl.py", "runners.py")),
)
_OTHER = "other"


@dataclass
class Profiler:
    """py-spy recording one process into ``out`` (raw collapsed stacks) until stopped."""

    pid: int
    out: Path
    #: Samples a second: at ~500 syncs/s, 100 samples a second over a 10 s step give
    #: ~1,000 samples, enough for stages of a few percent.
    rate: ClassVar[int] = 100
    _process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # Beside this Python first: a virtual environment's bin/ need not be on PATH.
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
            "py-spy"
        )
        if spy is None:
            raise ConfigError("--profile needs py-spy (in the dev extra): pip install py-spy")
        command = [spy, "record", "--pid", str(self.pid), "--gil", "--threads"]
        command += ["--rate", str(self.rate), "--format", "raw", "--output", str(self.out)]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        """Stop sampling (py-spy writes its file on SIGINT); ConfigError if it failed."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(2)
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        if not self.out.exists():
            reason = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise ConfigError(
                f"py-spy could not sample the server ({reason[0]}): it needs ptrace "
                "permission (root, or CAP_SYS_PTRACE)"
            )


def _stage(stack: str) -> str:
    for name, markers in STAGES:
        if any(marker in stack for marker in markers):
            return name
    return _OTHER


def stage_report(raw: Path, *, syncs: int, server_cpu_ms_per_sync: float | None) -> dict[str, Any]:
    """The samples in ``raw``, taken while the server answered ``syncs`` syncs, by stage:
    each stage's share, and that share of the server's measured CPU per sync."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            counts[_stage(stack)] += int(n)
    total = sum(counts.values())
    stages = []
    for name in [name for name, _ in STAGES] + [_OTHER]:
        share = counts[name] / total if total else 0.0
        row: dict[str, Any] = {"stage": name, "samples": counts[name], "share": round(share, 4)}
        if server_cpu_ms_per_sync is not None:
            row["ms_per_sync"] = round(share * server_cpu_ms_per_sync, 3)
        stages.append(row)
    return {"samples": total, "syncs": syncs, "stages": stages}
