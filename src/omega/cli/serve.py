"""``omega serve``: run the constellation on uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from omega.cli._output import err_console
from omega.cli.helper import HelperSecretOption, HelperUrlOption, check_helper

__all__ = ["register"]


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="TCP port (0: any free port).", min=0, max=65535)
    ] = 8000,
    db: Annotated[
        str | None,
        typer.Option(
            help="Storage URL (sqlite:///path or postgresql://…); default under --data-dir."
        ),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Keys, admin token and the default SQLite db.")
    ] = None,
    federation_interval: Annotated[
        float | None,
        typer.Option(help="Seconds between in-process federation rounds; 0 disables them."),
    ] = None,
    helper_url: HelperUrlOption = None,
    helper_secret_file: HelperSecretOption = None,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            help="Also serve the gRPC door (sync.proto) on this TCP port of --host (0: any "
            "free port, written to <data-dir>/grpc-address).",
            min=0,
            max=65535,
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the start-up summary as JSON.")
    ] = False,
) -> None:
    """Serve the constellation API (REST, SSE events, /metrics, /docs) until interrupted.

    Options not given fall back to OMEGA_* environment variables, then to defaults.

    \f
    Long only by its options: each is one annotated parameter, as Typer reads them.
    """
    import uvicorn

    from omega.cli._output import emit
    from omega.constellation import Settings, create_app, ensure_data_dir
    from omega.storage import check_storage_url, open_storage

    overrides: dict[str, Any] = {}
    if db is not None:
        overrides["db_url"] = db
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if federation_interval is not None:
        overrides["federation_interval"] = federation_interval
    if helper_url is not None:
        overrides["helper_url"] = helper_url
    if helper_secret_file is not None:
        overrides["helper_secret_file"] = helper_secret_file
    if grpc_port is not None:
        overrides["grpc_port"] = grpc_port
        overrides["grpc_host"] = host
    settings = Settings(**overrides)
    # What the server's start-up would fail on, refused now in one sentence (exit 2 or 4)
    # instead of a traceback from inside the server.
    check_storage_url(settings.storage_url)
    ensure_data_dir(settings.data_dir)
    open_storage(settings.storage_url).close()
    _check_grpc_port(settings)
    check_helper(
        settings.helper_url,
        min_batch=settings.share_min_batch,
        noise_epsilon=settings.share_noise_epsilon,
    )
    app = create_app(settings)
    emit(
        {
            "url": f"http://{host}:{port}",
            "docs": f"http://{host}:{port}/docs",
            "mcp": f"http://{host}:{port}/mcp (admin token; docs/mcp.md)"
            if settings.mcp
            else "off",
            "storage": settings.storage_url.split("@")[-1],
            "data_dir": str(settings.data_dir),
            "admin_token_file": str(settings.data_dir / "admin-token")
            if settings.admin_token is None
            else "(from OMEGA_ADMIN_TOKEN)",
            "federation_interval": settings.federation_interval,
            "helper": settings.helper_url or "(none: two-server reports are not counted)",
            **_grpc_summary(settings),
        },
        as_json=as_json,
        title="omega serve",
    )
    err_console.print("press Ctrl+C to stop")
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


def _check_grpc_port(settings: Any) -> None:
    """A gRPC port already taken, refused now in one sentence (the door's own start-up
    error would come as uvicorn's traceback)."""
    if not settings.grpc_port:
        return
    import socket

    from omega.errors import ConfigError

    with socket.socket(socket.AF_INET6 if ":" in settings.grpc_host else socket.AF_INET) as probe:
        # As the door binds: a port left in TIME_WAIT by a stopped server is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.grpc_host, settings.grpc_port))
        except OSError as exc:
            raise ConfigError(
                f"--grpc-port {settings.grpc_port}: cannot listen on {settings.grpc_host} "
                f"({exc.strerror or exc})"
            ) from None


def _grpc_summary(settings: Any) -> dict[str, str]:
    """Where the gRPC door listens, if it is open."""
    if settings.grpc_port is None:
        return {}
    if settings.grpc_port == 0:
        where = settings.data_dir / "grpc-address"
        return {"grpc": f"{settings.grpc_host}, any free port (written to {where})"}
    return {"grpc": f"{settings.grpc_host}:{settings.grpc_port}"}


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
