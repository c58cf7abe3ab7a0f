"""Where the CPU went during a bench step: the server, its database server (PostgreSQL),
the load generator, everything else.

Read from Linux's ``/proc`` (per-process ``utime + stime``, and the machine-wide busy
time from ``/proc/stat``), so a report can say how much of the box the server used per
sync and how much other work shared the cores. Elsewhere every figure reads as ``None``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuMeter", "CpuSnapshot", "process_tree"]

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    wall: float
    server: float | None  # CPU seconds used so far by the server's processes
    db: float | None  # ... by the database server's processes (None: not measured)
    client: float  # CPU seconds used so far by this process
    busy: float | None  # CPU seconds the whole machine spent not idle (nor stolen)
    stolen: float | None  # CPU seconds the hypervisor gave other guests while we waited


def _process_seconds(pid: int, *, reaped: bool = False) -> float | None:
    """``pid``'s CPU seconds; ``reaped``: with its exited children's (PostgreSQL's
    backends come and go, and the postmaster reaps them)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / _TICK


def _tree_seconds(root: int) -> float | None:
    """CPU seconds of ``root``'s processes now (each backend, from its start) and of the
    children it reaped."""
    total = 0.0
    for pid in process_tree(root):
        seconds = _process_seconds(pid, reaped=pid == root)
        if seconds is None and pid == root:
            return None
        total += seconds or 0.0  # a backend that exited meanwhile
    return total


def _machine_busy() -> tuple[float | None, float | None]:
    """Machine-wide CPU seconds busy and stolen (a virtual machine's cores are shared)."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None, None
    ticks = [int(v) for v in first[1:]] + [0] * 8
    idle = ticks[3] + ticks[4]  # idle + iowait
    steal = ticks[7]
    return (sum(ticks[:8]) - idle - steal) / _TICK, steal / _TICK


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn ``--workers`` runs the app in children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(child) for child in task.read_text().split()]
            except OSError:
                continue
    return found


class CpuMeter:
    """``server_pids``: the server's processes; ``db_pid``: a database server whose
    process tree (a PostgreSQL postmaster and its backends) is counted apart."""

    def __init__(self, server_pids: list[int], db_pid: int | None = None) -> None:
        self._pids = server_pids
        self._db_pid = db_pid

    def snapshot(self) -> CpuSnapshot:
        seconds = [_process_seconds(pid) for pid in self._pids]
        server = None if not seconds or None in seconds else sum(s for s in seconds if s)
        busy, stolen = _machine_busy()
        return CpuSnapshot(
            wall=time.monotonic(),
            server=server,
            db=_tree_seconds(self._db_pid) if self._db_pid is not None else None,
            client=time.process_time(),
            busy=busy,
            stolen=stolen,
        )

    @staticmethod
    def usage(start: CpuSnapshot, end: CpuSnapshot) -> dict[str, float | None]:
        """Percent of one core used in the interval (a 2-core box has 200%)."""
        span = max(end.wall - start.wall, 1e-9)

        def pct(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round(100 * (b - a) / span, 1)

        server = pct(start.server, end.server)
        client = pct(start.client, end.client)
        db = pct(start.db, end.db)
        busy = pct(start.busy, end.busy)
        others = None
        if busy is not None and server is not None and client is not None:
            others = round(max(0.0, busy - server - client - (db or 0.0)), 1)
        return {
            "server_cpu_pct": server,
            "db_cpu_pct": db,
            "client_cpu_pct": client,
            "other_cpu_pct": others,
            "steal_cpu_pct": pct(start.stolen, end.stolen),
        }
