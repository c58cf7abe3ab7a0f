"""Benchmarks: each ``omega bench`` command performs the real operation and reports what
it measured. One module per command:

- ``brain``: a TV brain at scale (:func:`run_brain_bench`; its fresh TV process is
  ``python -m omega.bench._fresh_tv``);
- ``sync``: wire sizes and codec speed of push and pull deltas (:func:`run_sync_bench`);
- ``server``: a real ``omega serve`` under an open-loop device fleet
  (:func:`run_server_bench`), which ``loadgen`` runs in its own process
  (``python -m omega.bench.loadgen``);
- ``federation``: one full round over a filled SQLite store (:func:`run_federation_bench`);
- ``shares``: two-server popularity reports counted with a real helper
  (:func:`run_shares_bench`);
- ``faults``: faults on the wire for the fault tests and the soak bench
  (:class:`ResetProxy`, a TCP proxy that resets connections at chosen byte offsets);
- ``mcp``: what the MCP viewer tools add to a recommendation, over stdio
  (:func:`run_mcp_bench`);
- ``fleet_restart``: device runtimes riding out a SIGKILLed server
  (:func:`run_fleet_restart`);
- ``failover``: device runtimes moving from a SIGKILLed replica to the other one, on a
  shared PostgreSQL (:func:`run_failover`);
- ``serving``: a constellation in a child process, started, waited for (/healthz) and
  stopped or SIGKILLed (:class:`ServerProcess`), for the benches and the tests;
- ``sdk``: the C SDK (libomega.so from a C program) against the Python API on one brain
  (:func:`run_sdk_bench`);
- ``wasm``: the browser part (protocol, seals) in Pyodide under Node.js against
  CPython, its load time and bundle size (:func:`run_wasm_bench`);
- ``soak``: a fleet at ~70 % of the held rate for minutes, through server SIGKILLs,
  connection resets and a helper outage, audited at the end (:func:`run_soak`), whose
  cheap devices run in their own process (``python -m omega.bench.soak_load``);
- ``connections``: many devices each on its own connection to one server
  (:func:`run_connections_bench`), held by client processes
  (``python -m omega.bench._conn_client``);
- ``cost``: the monthly cost of a fleet from the measured figures (:func:`estimate_cost`).

The names below load their module on first use (PEP 562): each bench imports the part it
measures (the embedding model, FastAPI, scipy), and importing one must not import the
others — the load generator and the fresh TV process would carry them in the figures
they report.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omega.bench.brain import run_brain_bench
    from omega.bench.connections import run_connections_bench
    from omega.bench.cost import estimate_cost
    from omega.bench.failover import run_failover
    from omega.bench.faults import ResetProxy
    from omega.bench.federation import run_federation_bench
    from omega.bench.fleet_restart import run_fleet_restart
    from omega.bench.loadgen import LoadConfig
    from omega.bench.mcp import run_mcp_bench
    from omega.bench.sdk import run_sdk_bench
    from omega.bench.server import DEFAULT_RATES, run_server_bench
    from omega.bench.serving import BenchError, ServerProcess
    from omega.bench.shares import run_shares_bench
    from omega.bench.soak import run_soak
    from omega.bench.sync import measure_sync, run_sync_bench, synthetic_pulls, synthetic_pushes
    from omega.bench.wasm import run_wasm_bench

__all__ = [
    "DEFAULT_RATES",
    "BenchError",
    "LoadConfig",
    "ResetProxy",
    "ServerProcess",
    "estimate_cost",
    "measure_sync",
    "run_brain_bench",
    "run_connections_bench",
    "run_failover",
    "run_federation_bench",
    "run_fleet_restart",
    "run_mcp_bench",
    "run_sdk_bench",
    "run_server_bench",
    "run_shares_bench",
    "run_soak",
    "run_sync_bench",
    "run_wasm_bench",
    "synthetic_pulls",
    "synthetic_pushes",
]

_HOMES = {
    "DEFAULT_RATES": "server",
    "BenchError": "serving",
    "LoadConfig": "loadgen",
    "ResetProxy": "faults",
    "ServerProcess": "serving",
    "estimate_cost": "cost",
    "measure_sync": "sync",
    "run_brain_bench": "brain",
    "run_failover": "failover",
    "run_connections_bench": "connections",
    "run_federation_bench": "federation",
    "run_fleet_restart": "fleet_restart",
    "run_mcp_bench": "mcp",
    "run_sdk_bench": "sdk",
    "run_server_bench": "server",
    "run_shares_bench": "shares",
    "run_soak": "soak",
    "run_sync_bench": "sync",
    "run_wasm_bench": "wasm",
    "synthetic_pulls": "sync",
    "synthetic_pushes": "sync",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'omega.bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"omega.bench.{home}"), name)
    globals()[name] = value
    return value
