"""``omega sdk build``: the C SDK (``libomega.so`` and ``omega.h``) for TV firmware."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from omega.cli._output import JsonOption, emit

__all__ = ["app", "register"]

app = typer.Typer(
    help="The C SDK for TV makers: build libomega.so and omega.h.", no_args_is_help=True
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


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="sdk")
