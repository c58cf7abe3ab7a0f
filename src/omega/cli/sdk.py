"""``omega sdk build``: the C SDK (``libomega.so`` and ``omega.h``) for TV firmware;
``omega sdk wasm``: the bundle a web-app TV serves to run the protocol in Pyodide."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from omega.cli._output import JsonOption, emit

__all__ = ["app", "default_cache", "register"]

app = typer.Typer(
    help="The SDK for TV makers: libomega.so and omega.h (C), and the WASM bundle (web apps).",
    no_args_is_help=True,
)


@app.command()
def build(
    out: Annotated[Path, typer.Option(help="Where to write lib/libomega.so and include/omega.h.")],
    as_json: JsonOption = False,
) -> None:
    """Build the C library (cffi's embedding mode over this Python) and copy its header.

    The library embeds this interpreter: it records this Python's installation and the
    directories holding Omega and its dependencies (docs/sdk.md: what a device needs)."""
    from omega.sdk import build_sdk

    done = build_sdk(out)
    emit(
        {**done.as_dict(), "library_bytes": done.library.stat().st_size},
        as_json=as_json,
        title="omega sdk build",
    )


def default_cache() -> Path:
    """Where ``omega sdk wasm`` keeps what npm and pip fetched: ``$XDG_CACHE_HOME/omega/wasm``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "omega" / "wasm"


@app.command()
def wasm(
    out: Annotated[Path, typer.Option(help="Where to write the bundle a web page serves.")],
    cache: Annotated[
        Path | None,
        typer.Option(help="Where fetched parts are kept. [default: ~/.cache/omega/wasm]"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Gather what a web-app TV serves to run Omega's protocol and sync in the browser:
    Pyodide (npm), the wheels it loads (PyPI), Omega's modules and a loader, omega.mjs.

    Fetches through npm and pip on first use, then from the cache (docs/sdk.md#wasm)."""
    from omega.wasm.bundle import PYODIDE_VERSION, build_bundle

    bundle = build_bundle(out, cache=cache or default_cache())
    emit(
        {"out": str(bundle.root), "pyodide": PYODIDE_VERSION, "bytes": bundle.sizes()},
        as_json=as_json,
        title="omega sdk wasm",
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="sdk")
