"""``omega mcp viewer|core``: Omega's MCP tools on stdio, for an AI assistant to launch.

stdout carries the protocol: nothing else is printed there (logs go to stderr). A bad
option is refused before the server starts, with one sentence and an exit code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app", "register"]

app = typer.Typer(
    help="MCP tools for AI assistants, on stdio (see docs/mcp.md).", no_args_is_help=True
)

ServerOption = Annotated[
    str | None,
    typer.Option("--server", help="The constellation, e.g. http://127.0.0.1:8000."),
]


@app.command()
def viewer(
    brain: Annotated[Path, typer.Option("--brain", help="The TV brain's directory.")],
    server: ServerOption = None,
    every: Annotated[
        float, typer.Option(help="With --server: sync in the background every SECONDS.")
    ] = 1800.0,
    certificate: Annotated[
        Path | None,
        typer.Option(help="The TV's device certificate (`omega attest device` writes it)."),
    ] = None,
    device_key: Annotated[
        Path | None, typer.Option(help="The TV's device key (PEM), with --certificate.")
    ] = None,
    release_key: Annotated[
        list[str] | None,
        typer.Option("--release-key", help="A release key to pin, KID=BASE64; repeatable."),
    ] = None,
) -> None:
    """The viewer tools (viewer_init, viewer_track_behavior, viewer_get_recommendations,
    viewer_sync, viewer_stats, viewer_export_patterns) for one TV's brain.

    With --server the TV syncs with that constellation; it registers attested by
    --certificate and --device-key, or with credentials an operator provisioned
    (omega_register_viewer, given to viewer_init), or unattested where the server allows
    it."""
    import anyio

    from omega.cli.attest import read_identity
    from omega.cli.sync import release_keys
    from omega.errors import ConfigError, InputError
    from omega.mcp import ViewerOptions, ViewerSession, viewer_server
    from omega.sync.transport import check_base_url

    if brain.exists() and not brain.is_dir():
        raise ConfigError(f"--brain {brain} exists and is not a directory")
    if not every > 0:
        raise InputError(f"--every must be a positive number of seconds, got {every}")
    if (certificate is None) != (device_key is None):
        raise ConfigError("--certificate and --device-key go together")
    options: dict[str, object] = {}
    if certificate is not None and device_key is not None:
        options["attestation"] = read_identity(certificate, device_key)
    pinned = release_keys(release_key or [])
    if pinned:
        options["release_keys"] = pinned
    session = ViewerSession(
        ViewerOptions(
            directory=brain,
            server=check_base_url(server) if server is not None else None,
            every=every,
            sync_options=options,
        )
    )
    try:
        anyio.run(viewer_server(session).run_stdio_async)
    finally:
        session.close()


@app.command()
def core(
    server: Annotated[
        str, typer.Option("--server", help="The constellation, e.g. http://127.0.0.1:8000.")
    ],
    admin_token_file: Annotated[
        Path | None,
        typer.Option(help="File holding the admin token (default: OMEGA_ADMIN_TOKEN)."),
    ] = None,
) -> None:
    """The core tools (omega_init, omega_register_viewer, omega_aggregate,
    omega_distribute, omega_stats, omega_consensus, omega_prune) for a constellation's
    operator, through its admin API."""
    import anyio

    from omega.mcp import Operator, core_server
    from omega.sync import HttpTransport

    token = _admin_token(admin_token_file)
    operator = Operator(HttpTransport(server), token)

    async def main() -> None:
        try:
            await core_server(operator).run_stdio_async()
        finally:
            await operator.aclose()

    anyio.run(main)


def _admin_token(path: Path | None) -> str:
    """The admin token from ``path``, else ``OMEGA_ADMIN_TOKEN``; ConfigError naming both."""
    from omega.cli._admin_client import read_token_file
    from omega.errors import ConfigError

    if path is not None:
        return read_token_file(path)
    token = os.environ.get("OMEGA_ADMIN_TOKEN", "").strip()
    if not token:
        raise ConfigError(
            "the core tools need the admin token: --admin-token-file FILE or OMEGA_ADMIN_TOKEN"
        )
    return token


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="mcp")
