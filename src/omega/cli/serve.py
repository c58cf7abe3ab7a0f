"""``omega serve``: run the constellation on uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from omega.cli._cowatch_dp import (
    DELTA_VARIABLE,
    EPSILON_VARIABLE,
    SPREAD_VARIABLE,
    check_cowatch_dp,
    check_cowatch_spread,
    in_environment,
    named,
)
from omega.cli._output import err_console
from omega.cli.helper import HelperSecretOption, HelperUrlOption, check_helper
from omega.errors import ConfigError

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
    rate_limit_url: Annotated[
        str | None,
        typer.Option(
            help="Where rate limits count, shared by replicas: redis://host:6379/0, "
            "postgresql://… or memory://; default the --db's PostgreSQL, else memory."
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
    cowatch_per_epoch: Annotated[
        int | None,
        typer.Option(
            help="Co-watch pairs a TV may send per epoch (OPRF points it may have evaluated); "
            "TVs read it. Give the helper the same --cowatch-per-epoch. Default 128, the "
            "TVs' own (OMEGA_COWATCH_PER_EPOCH).",
            min=1,
            max=1000,
        ),
    ] = None,
    cowatch_epoch_days: Annotated[
        float | None,
        typer.Option(
            help="Days in a co-watch epoch (default 7; OMEGA_COWATCH_EPOCH_S in seconds); "
            "the same as the helper's --cowatch-epoch-days.",
            min=60 / 86_400,
        ),
    ] = None,
    cowatch_dp_epsilon: Annotated[
        float | None,
        typer.Option(
            help="Central DP on released co-watch counts: ε of each private release (one "
            "TV's pairs of one epoch; the ledger adds releases up, docs/cowatch.md); needs "
            "--helper-url. 0, the default: off (OMEGA_COWATCH_DP_EPSILON).",
            min=0,
            max=1000,
        ),
    ] = None,
    cowatch_dp_delta: Annotated[
        float | None,
        typer.Option(
            help="δ of each private co-watch release, in (0, 1); default 1e-6 "
            "(OMEGA_COWATCH_DP_DELTA).",
        ),
    ] = None,
    cowatch_spread: Annotated[
        float | None,
        typer.Option(
            help="The spread rule in the co-watch release: a pair backed by more than this "
            "× its neighbour's own best count as a source is not released (a defence "
            "against forged pairs, docs/cowatch.md). 0, the default: off "
            "(OMEGA_COWATCH_SPREAD; give `omega worker` the same).",
            min=0,
            max=100,
        ),
    ] = None,
    quic_cert: Annotated[
        Path | None,
        typer.Option(help="PEM certificate: also serve HTTP/3 (QUIC) with it (needs --quic-key)."),
    ] = None,
    quic_key: Annotated[Path | None, typer.Option(help="PEM private key of --quic-cert.")] = None,
    quic_port: Annotated[
        int | None,
        typer.Option(help="UDP port of HTTP/3 (default 4433; 0: any free port).", min=0, max=65535),
    ] = None,
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
    from omega.constellation.ratelimit_shared import open_limit_store
    from omega.storage import check_storage_url, open_storage

    overrides: dict[str, Any] = {}
    if db is not None:
        overrides["db_url"] = db
    if rate_limit_url is not None:
        overrides["rate_limit_url"] = rate_limit_url
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if federation_interval is not None:
        overrides["federation_interval"] = federation_interval
    if helper_url is not None:
        overrides["helper_url"] = helper_url
    if helper_secret_file is not None:
        overrides["helper_secret_file"] = helper_secret_file
    if cowatch_per_epoch is not None:
        overrides["cowatch_per_epoch"] = cowatch_per_epoch
    if cowatch_epoch_days is not None:
        overrides["cowatch_epoch_s"] = cowatch_epoch_days * 86_400.0
    if cowatch_dp_epsilon is not None:
        overrides["cowatch_dp_epsilon"] = cowatch_dp_epsilon
    if cowatch_dp_delta is not None:
        if not 0 < cowatch_dp_delta < 1:
            raise ConfigError(f"--cowatch-dp-delta must be between 0 and 1, got {cowatch_dp_delta}")
        overrides["cowatch_dp_delta"] = cowatch_dp_delta
    if cowatch_spread is not None:
        overrides["cowatch_spread"] = cowatch_spread
    for name, value in (("quic_cert", quic_cert), ("quic_key", quic_key), ("quic_port", quic_port)):
        if value is not None:
            overrides[name] = value
    if quic_cert is not None or quic_key is not None:
        overrides["quic_host"] = host
    if grpc_port is not None:
        overrides["grpc_port"] = grpc_port
        overrides["grpc_host"] = host
    settings = Settings(**overrides)
    # What the server's start-up would fail on, refused now in one sentence (exit 2 or 4)
    # instead of a traceback from inside the server.
    check_storage_url(settings.storage_url)
    rate_limits = open_limit_store(settings.rate_limit_url, settings.storage_url).where
    ensure_data_dir(settings.data_dir)
    open_storage(settings.storage_url).close()
    _check_grpc_port(settings)
    delta_from_env = cowatch_dp_delta is None and in_environment(DELTA_VARIABLE)
    check_cowatch_dp(
        settings,
        helper_url=settings.helper_url,
        epsilon_flag=named("--cowatch-dp-epsilon", cowatch_dp_epsilon, EPSILON_VARIABLE),
        delta_flag=DELTA_VARIABLE if delta_from_env else "--cowatch-dp-delta",
        delta_given=cowatch_dp_delta is not None or delta_from_env,
    )
    check_cowatch_spread(
        settings,
        helper_url=settings.helper_url,
        spread_flag=named("--cowatch-spread", cowatch_spread, SPREAD_VARIABLE),
    )
    check_helper(
        settings.helper_url,
        min_batch=settings.share_min_batch,
        noise_epsilon=settings.share_noise_epsilon,
        cowatch=(settings.cowatch_per_epoch, settings.cowatch_epoch_s)
        if settings.cowatch_threshold
        else None,
    )
    http3 = _http3_summary(settings)
    app = create_app(settings)
    emit(
        {
            "url": f"http://{host}:{port}",
            "docs": f"http://{host}:{port}/docs",
            "mcp": f"http://{host}:{port}/mcp (admin token; docs/mcp.md)"
            if settings.mcp
            else "off",
            "storage": settings.storage_url.split("@")[-1],
            "rate_limits": rate_limits,
            "data_dir": str(settings.data_dir),
            "admin_token_file": str(settings.data_dir / "admin-token")
            if settings.admin_token is None
            else "(from OMEGA_ADMIN_TOKEN)",
            "federation_interval": settings.federation_interval,
            "helper": settings.helper_url or "(none: two-server reports are not counted)",
            "cowatch": f"{settings.cowatch_per_epoch} pairs per TV per "
            f"{settings.cowatch_epoch_s / 86_400:g} days"
            if settings.cowatch_threshold
            else "off",
            "cowatch_dp": f"ε {settings.cowatch_dp_epsilon:g}, δ {settings.cowatch_dp_delta:g} "
            "per private release"
            if settings.cowatch_dp_on
            else "off",
            **http3,
            **_grpc_summary(settings),
        },
        as_json=as_json,
        title="omega serve",
    )
    err_console.print("press Ctrl+C to stop")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=settings.http_keep_alive,
    )


def _http3_summary(settings: Any) -> dict[str, str]:
    """The HTTP/3 door's lines of the start-up summary, its certificate checked now (a
    bad file: one sentence, exit 2, rather than a traceback from the server's start)."""
    if settings.quic_cert is None and settings.quic_key is None:
        return {}
    from omega.constellation.doors.http3 import PORT_FILE, bind_udp, load_server_tls
    from omega.errors import ConfigError
    from omega.protocol.quic import spki_pin

    if settings.quic_cert is None or settings.quic_key is None:
        raise ConfigError("--quic-cert and --quic-key go together: give both")
    tls = load_server_tls(settings.quic_cert, settings.quic_key)
    if settings.quic_port:
        bind_udp(settings.quic_host, settings.quic_port).close()  # taken: say so now
    port = settings.quic_port or f"(any free port: see {settings.data_dir / PORT_FILE})"
    return {"http3": f"https://{settings.quic_host}:{port}", "http3_pin": spki_pin(tls.certificate)}


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
