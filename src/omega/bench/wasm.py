"""``omega bench wasm``: the browser part in Pyodide (under Node.js) against CPython.

The bench builds the bundle a web-app TV serves (``omega sdk wasm``), then:

- starts Node.js ``loads`` times with an empty script, each a cold start: Node, the
  loader, Pyodide (interpreter and standard library), the wheels, Omega's modules;
- makes ``messages`` synthetic pushes and pulls (``omega bench sync``'s) and as many
  /sync answers sealed to their requests with a fresh Ed25519 key, and times the same
  three operations in Pyodide and in this CPython (``_wasm_timing.measure``): encoding a
  push, decoding a pull, checking a seal; each figure is the median over ``repeats``
  passes of the mean µs per message;
- sizes the bundle: its bytes as files, and gzipped (what a page sends compressed).
"""

from __future__ import annotations

import gzip
import json
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from omega.bench import _wasm_timing
from omega.bench.sync import synthetic_pulls, synthetic_pushes
from omega.errors import InputError
from omega.protocol import PullRequest, SyncRequest, SyncResponse, codec, signing
from omega.wasm.bundle import PYODIDE_VERSION, Bundle, build_bundle
from omega.wasm.node import run_in_pyodide

__all__ = ["run_wasm_bench"]

_KID = "k20260101T000000.000000000-0000"


def _frames(messages: int, *, seed: int, repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    key = Ed25519PrivateKey.generate()
    pulls = synthetic_pulls(messages, rng=rng)
    sealed = []
    for n, pull in enumerate(pulls):
        request = codec.encode(
            SyncRequest(pull=PullRequest(viewer_id="v"), nonce=n.to_bytes(16, "big"))
        )
        answer = codec.encode(SyncResponse(pull=pull))
        digest = signing.request_digest(request)
        sealed.append((signing.seal(answer, request=digest, kid=_KID, key=key), request))
    return {
        "pushes": [codec.encode(m) for m in synthetic_pushes(messages, rng=rng)],
        "pulls": [codec.encode(m) for m in pulls],
        "sealed": sealed,
        "trusted": {_KID: signing.public_bytes(key)},
        "repeats": repeats,
    }


def _sizes(bundle: Bundle) -> dict[str, Any]:
    files = {k: v for k, v in bundle.sizes().items() if k != "total"}
    zipped = {name: len(gzip.compress((bundle.root / name).read_bytes(), 6)) for name in files}
    return {
        "files": files,
        "total_bytes": sum(files.values()),
        "total_gzip_bytes": sum(zipped.values()),
        "wasm_gzip_bytes": zipped["pyodide/pyodide.asm.wasm"],
    }


def run_wasm_bench(
    *,
    cache: Path,
    messages: int = 200,
    repeats: int = 5,
    loads: int = 3,
    seed: int = 0,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Load time, per-operation µs in Pyodide and CPython, and the bundle's size."""
    if messages < 1 or repeats < 1 or loads < 1:
        raise InputError("messages, repeats and loads must be at least 1")
    with tempfile.TemporaryDirectory(prefix="omega-bench-wasm-") as tmp:
        work = Path(tmp)
        progress("building the bundle (omega sdk wasm)…")
        bundle = build_bundle(work / "bundle", cache=cache)
        (work / "io").mkdir()
        (work / "empty.py").write_text("")
        cold = []
        for n in range(loads):
            progress(f"cold start {n + 1}/{loads} of Pyodide under Node.js…")
            cold.append(run_in_pyodide(bundle, work / "empty.py", io=work / "io").load_s)
        frames = _frames(messages, seed=seed, repeats=repeats)
        (work / "io" / "frames.msgpack").write_bytes(msgspec.msgpack.encode(frames))
        progress("timing the protocol in Pyodide…")
        run_in_pyodide(bundle, Path(_wasm_timing.__file__), io=work / "io", timeout=1800)
        inside = json.loads((work / "io" / "timings.json").read_text())
        progress("timing the protocol in CPython…")
        here = _wasm_timing.measure(frames, repeats=repeats)
        sizes = _sizes(bundle)
    operations: dict[str, dict[str, float]] = {}
    for name, figures in here.items():
        pyodide_us = statistics.median(inside["us"][name])
        cpython_us = statistics.median(figures)
        operations[name] = {
            "pyodide_us": round(pyodide_us, 1),
            "cpython_us": round(cpython_us, 1),
            "ratio": round(pyodide_us / cpython_us, 2),
        }
    return {
        "pyodide": PYODIDE_VERSION,
        "messages": messages,
        "repeats": repeats,
        "load_s": {
            "median": round(statistics.median(cold), 2),
            "each": [round(s, 2) for s in cold],
        },
        "import_s": round(inside["import_s"], 3),
        "operations": operations,
        "bundle": sizes,
    }
