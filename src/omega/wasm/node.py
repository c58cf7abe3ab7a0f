"""Python run in a bundle's Pyodide under Node.js: how the tests and the bench drive the
browser part, as a page would load it (``omega.mjs``) but with Node for the browser.

The script reads and writes the host directory ``io``, mounted at ``/io``; Node's own
``fetch`` serves ``pyodide.http.pyfetch``, so a script can sync with a real constellation.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from omega.errors import ConfigError
from omega.wasm.bundle import Bundle

__all__ = ["PyodideRun", "run_in_pyodide"]


@dataclass(frozen=True, slots=True)
class PyodideRun:
    """Seconds from Node's start of the loader to a Pyodide with Omega installed, and
    the script's own seconds."""

    load_s: float
    run_s: float


def run_in_pyodide(bundle: Bundle, script: Path, *, io: Path, timeout: float = 300.0) -> PyodideRun:
    """Run ``script`` in ``bundle``'s Pyodide; :class:`ConfigError` with its traceback if
    it raises, or if Node.js is missing."""
    node = shutil.which("node")
    if node is None:
        raise ConfigError("node is not installed: it runs Pyodide (Debian: apt-get install nodejs)")
    runner = resources.files("omega.wasm").joinpath("js", "run.mjs")
    with resources.as_file(runner) as path:
        command = [node, str(path), str(bundle.root.resolve()), str(io.resolve()), str(script)]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise ConfigError(f"{script.name} did not finish in Pyodide in {timeout:g} s") from None
    if done.returncode != 0:
        raise ConfigError(f"{script.name} failed in Pyodide:\n{done.stderr.strip()[-4000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return PyodideRun(figures["load_ms"] / 1e3, figures["run_ms"] / 1e3)
