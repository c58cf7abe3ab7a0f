"""``omega helper``: the second server of two-server popularity counting."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from omega.cli._output import emit, err_console
from omega.errors import InputError
from omega.protocol.attestation import check_name, load_public_key

__all__ = ["HelperSecretOption", "HelperUrlOption", "check_helper", "parse_maker", "register"]

#: The options `omega serve` and `omega worker` take to count two-server reports.
HelperUrlOption = Annotated[
    str | None,
    typer.Option(help="The helper that counts two-server popularity reports with us."),
]
HelperSecretOption = Annotated[
    Path | None, typer.Option(help="The secret shared with that helper (hex file).")
]


def check_helper(
    url: str | None,
    *,
    min_batch: int,
    noise_epsilon: float,
    cowatch: tuple[int, float] | None = None,
) -> None:
    """Refuse to start against a helper that would never count our batches.

    A helper whose minimum batch is above the leader's refuses every batch the leader can
    make, and reports would wait forever; that is a setting to fix before starting. So is
    a co-watch bound below ours (``cowatch``: our per-TV bound and epoch seconds, None when
    co-watch is off): TVs send what we allow, and the helper would refuse them with 429.
    An unreachable helper only warns: rounds keep the reports queued until it answers."""
    if not url:
        return
    import httpx

    from omega.errors import ConfigError
    from omega.helper.app import info_of

    try:
        answer = httpx.get(url.rstrip("/") + "/helper/v1/info", timeout=10.0)
        info = info_of(answer.content) if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        err_console.print(f"[yellow]warning:[/] the helper at {url} did not answer ({exc})")
        return
    if info is None:
        err_console.print(
            f"[yellow]warning:[/] the helper at {url} answered {answer.status_code} for its info"
        )
        return
    if info.min_batch > min_batch:
        raise ConfigError(
            f"the helper at {url} aggregates batches of at least {info.min_batch} reports, "
            f"but this server makes batches from {min_batch} (share_min_batch): raise "
            f"OMEGA_SHARE_MIN_BATCH to ≥ {info.min_batch} or lower the helper's --min-batch"
        )
    if info.noise_epsilon != noise_epsilon:
        err_console.print(
            f"[yellow]warning:[/] the helper adds noise of ε = {info.noise_epsilon:g} per "
            f"report, this server ε = {noise_epsilon:g} (share_noise_epsilon); TVs charge "
            "their budget one ε, so keep the three equal"
        )
    if cowatch is not None and info.cowatch_per_epoch:
        _check_cowatch(url, info.cowatch_per_epoch, info.cowatch_epoch_s, *cowatch)


def _check_cowatch(url: str, theirs: int, their_s: float, ours: int, our_s: float) -> None:
    """The helper must accept every TV's epoch as we tell TVs to send it."""
    from omega.errors import ConfigError

    if theirs < ours or their_s > our_s:
        raise ConfigError(
            f"the helper at {url} accepts {theirs} co-watch reports per TV per "
            f"{their_s / 86_400:g}-day epoch, but this server lets TVs send {ours} per "
            f"{our_s / 86_400:g} days (OMEGA_COWATCH_PER_EPOCH, OMEGA_COWATCH_EPOCH_S): the "
            "helper would refuse them; give both servers the same bound and epoch "
            "(the helper's --cowatch-per-epoch and --cowatch-epoch-days)"
        )
    if (theirs, their_s) != (ours, our_s):
        err_console.print(
            f"[yellow]warning:[/] the helper's co-watch bound ({theirs} per "
            f"{their_s / 86_400:g} days) differs from this server's ({ours} per "
            f"{our_s / 86_400:g} days); keep them equal"
        )


app = typer.Typer(
    help=(
        "The helper: counts two-server popularity reports with the constellation so that "
        "neither server sees which title a TV reported. Run by a different operator than "
        "the constellation; the two share one secret."
    ),
    no_args_is_help=True,
)

_DATA = Annotated[
    Path,
    typer.Option(help="Where the helper keeps its X25519 key, the shared secret and its ids."),
]


def parse_maker(entry: str) -> tuple[tuple[str, str], Ed25519PublicKey]:
    """``MAKER/KEY_ID=PUBLIC_KEY`` (the key as text, or a file holding it)."""
    name, sep, key_text = entry.partition("=")
    maker, slash, kid = name.partition("/")
    if not sep or not slash:
        raise InputError(f"--trust-maker takes MAKER/KEY_ID=PUBLIC_KEY, got {entry!r}")
    check_name(maker, "--trust-maker's manufacturer id")
    check_name(kid, "--trust-maker's key id")
    path = Path(key_text)
    return (maker, kid), load_public_key(path.read_bytes() if path.is_file() else key_text)


@app.command("serve")
def serve(
    data_dir: _DATA = Path("omega-helper"),
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="TCP port (0: any free port).", min=0, max=65535)
    ] = 8100,
    min_batch: Annotated[
        int, typer.Option(help="The fewest valid reports the helper aggregates at once.", min=1)
    ] = 100,
    noise_epsilon: Annotated[
        float,
        typer.Option(
            help="ε of the discrete Laplace noise added per report (0: none).", min=0, max=20
        ),
    ] = 4.0,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    trust_maker: Annotated[
        list[str] | None,
        typer.Option(
            help="A manufacturer key whose TVs may send co-watch reports, as "
            "MAKER/KEY_ID=PUBLIC_KEY (hex, base64 or a PEM file); repeat for each. "
            "None: the co-watch routes are off (docs/cowatch.md)."
        ),
    ] = None,
    cowatch_per_epoch: Annotated[
        int,
        typer.Option(
            help="Co-watch reports (and OPRF points) per TV per epoch: the same as the "
            "constellation's OMEGA_COWATCH_PER_EPOCH (both default to the TVs' 128).",
            min=1,
            max=1000,
        ),
    ] = 128,
    cowatch_epoch_days: Annotated[
        float, typer.Option(help="Days in a co-watch epoch.", min=0.001)
    ] = 7.0,
    cowatch_min_batch: Annotated[
        int, typer.Option(help="Co-watch reports that wait before the leader gets a batch.", min=1)
    ] = 100,
    cowatch_min_devices: Annotated[
        int,
        typer.Option(
            help="Distinct TVs whose co-watch reports must wait before the leader gets a "
            "batch (the shuffle hides each report among that many TVs).",
            min=1,
        ),
    ] = 10,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the start-up summary as JSON.")
    ] = False,
) -> None:
    """Serve the helper API (/helper/v1/…, /metrics, /docs) until interrupted."""
    import uvicorn

    from omega.helper.app import create_helper_app
    from omega.helper.service import SECRET_FILE, HelperConfig, HelperService

    service = HelperService.open(
        data_dir, HelperConfig(min_batch=min_batch, noise_epsilon=noise_epsilon)
    )
    cowatch = None
    if trust_maker:
        from omega.helper.cowatch import CowatchConfig, CowatchDesk

        config = CowatchConfig(
            per_epoch=cowatch_per_epoch,
            epoch_s=cowatch_epoch_days * 86_400.0,
            min_batch=cowatch_min_batch,
            min_devices=cowatch_min_devices,
            manufacturer_keys=dict(parse_maker(entry) for entry in trust_maker),
        )
        cowatch = CowatchDesk(data_dir, service.secret, config)
    emit(
        {
            "url": f"http://{host}:{port}",
            "public_key": service.info().public_key.hex(),
            "secret_file": str(data_dir / SECRET_FILE),
            "min_batch": min_batch,
            "noise_epsilon": noise_epsilon,
            "cowatch_makers": sorted("/".join(k) for k in cowatch.config.manufacturer_keys)
            if cowatch
            else [],
        },
        as_json=as_json,
        title="omega helper serve",
    )
    err_console.print(
        "give the constellation the secret file (--helper-secret-file) and TVs the public "
        "key; press Ctrl+C to stop"
    )
    uvicorn.run(
        create_helper_app(service, cowatch),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
    )


@app.command("key")
def key(
    data_dir: _DATA = Path("omega-helper"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the helper's public key (hex), making the key and secret on first use."""
    from omega.helper.service import SECRET_FILE, HelperService

    service = HelperService.open(data_dir)
    public_key = service.info().public_key.hex()
    secret_file = str(data_dir / SECRET_FILE)
    if as_json:
        emit({"public_key": public_key, "secret_file": secret_file}, as_json=True)
        return
    # Plain lines, not a table: a table wraps the 64 hex digits and a copy breaks.
    typer.echo(f"public key (X25519, hex):\n{public_key}\nsecret file: {secret_file}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="helper")
