"""``omega sync DIR --server URL``: one push + pull round trip for a brain directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def sync(
    directory: Annotated[Path, typer.Argument(help="The brain's directory.")],
    server: Annotated[
        str, typer.Option("--server", help="The constellation, e.g. http://127.0.0.1:8000.")
    ],
    region: Annotated[str, typer.Option(help="Region sent at registration and in pulls.")] = (
        "global"
    ),
    max_pull_bytes: Annotated[int, typer.Option(help="Byte budget of each pull page.")] = 5120,
    codebook: Annotated[
        bool, typer.Option(help="Adopt the server's codebook first if it is new.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Push the brain's outbox and pull the constellation's release since its cursor.

    Registers the device on first use (credentials stay in the brain's database)."""
    from omega.brain import Brain
    from omega.cli._output import emit
    from omega.errors import InputError
    from omega.sync import run_sync

    if max_pull_bytes < 1:
        raise InputError(f"--max-pull-bytes must be positive, got {max_pull_bytes}")
    with Brain.open(directory, create=False) as brain:
        result = run_sync(
            brain,
            server,
            fetch_codebook=codebook,
            region=region,
            max_pull_bytes=max_pull_bytes,
        )
    emit(result.as_dict(), as_json=as_json, title=f"omega sync {directory}")


def register(app: typer.Typer) -> None:
    app.command("sync")(sync)
