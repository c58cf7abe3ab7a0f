"""The timed part of ``omega bench wasm``: the same function here and in Pyodide.

:func:`measure` encodes pushes, decodes pulls and checks /sync answers' seals with
``omega.protocol`` and returns each operation's mean µs per message for every pass. Run
as a script (in the bundle's Pyodide, ``omega.wasm.node``) it reads the frames from
``/io/frames.msgpack`` and writes the figures to ``/io/timings.json``. It imports the
protocol alone, so that it runs where the rest of Omega does not.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from typing import Any

import msgspec


def measure(frames: dict[str, Any], *, repeats: int) -> dict[str, list[float]]:
    """µs per message of each operation, one figure per pass over all the messages."""
    from omega.protocol import codec, signing

    pushes = [codec.decode(f) for f in frames["pushes"]]
    sealed = [(f, signing.request_digest(r)) for f, r in frames["sealed"]]
    trusted = frames["trusted"]
    operations: dict[str, Callable[[], list[Any]]] = {
        "encode_push": lambda: [codec.encode(m) for m in pushes],
        "decode_pull": lambda: [codec.decode(f) for f in frames["pulls"]],
        "verify_seal": lambda: [signing.verify(f, request=d, trusted=trusted) for f, d in sealed],
    }
    figures: dict[str, list[float]] = {name: [] for name in operations}
    for _ in range(repeats):
        for name, operation in operations.items():
            start = time.perf_counter()
            done = operation()
            figures[name].append((time.perf_counter() - start) / len(done) * 1e6)
    return figures


def _main() -> None:
    started = time.perf_counter()
    for module in ("omega.protocol.signing", "omega.wasm"):  # what a page imports first
        importlib.import_module(module)
    imported = time.perf_counter() - started
    with open("/io/frames.msgpack", "rb") as given:
        frames = msgspec.msgpack.decode(given.read())
    figures = measure(frames, repeats=frames["repeats"])
    with open("/io/timings.json", "w") as out:
        json.dump({"import_s": imported, "us": figures}, out)


if __name__ == "__main__":
    _main()
