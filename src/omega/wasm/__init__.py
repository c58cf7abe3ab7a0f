"""Omega in WebAssembly, for TV platforms whose apps are web pages (docs/sdk.md#wasm).

What runs in a browser's Python (Pyodide, from its npm package, offline): the wire
protocol (``omega.protocol``: messages, validation, the codec with zstd, seal checks) and
a browser TV's sync exchanges (:class:`BrowserSync`). The brain does not: its embedder
(onnxruntime), vector index (usearch) and numpy have no WebAssembly build that loads
without Pyodide's full distribution (docs/sdk.md says what would lift each).

- :mod:`omega.wasm.device` is the part that runs in Pyodide;
- :mod:`omega.wasm.bundle` (``omega sdk wasm``) gathers what a page serves: Pyodide's
  files, the wheels it loads, Omega's modules;
- :mod:`omega.wasm.node` runs a Python script in that bundle under Node.js (tests, bench).
"""

from __future__ import annotations

from omega.wasm.device import BrowserSync, Exchange

__all__ = ["BrowserSync", "Exchange"]
