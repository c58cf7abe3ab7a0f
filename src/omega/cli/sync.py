"""``omega sync DIR --server URL``: one push + pull round trip for a brain directory."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

_RELEASE_KEY_HELP = (
    "A constellation release key to pin, KID=BASE64 (the raw 32-byte Ed25519 public "
    "key; see GET /api/omega/release-keys); repeatable. Given, it wins over the keys "
    "registration hands out."
)


def release_keys(values: list[str]) -> dict[str, bytes]:
    """``--release-key KID=BASE64`` values as kid → raw key; ConfigError naming the flag."""
    from omega.errors import ConfigError

    keys: dict[str, bytes] = {}
    for value in values:
        kid, sep, encoded = value.partition("=")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raw = b""
        if not sep or not kid or len(raw) != 32:
            raise ConfigError(
                f"--release-key must be KID=BASE64 of a 32-byte Ed25519 public key, got {value!r}"
            )
        keys[kid] = raw
    return keys


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
    certificate: Annotated[
        Path | None,
        typer.Option(help="The TV's device certificate (`omega attest device` writes it)."),
    ] = None,
    device_key: Annotated[
        Path | None, typer.Option(help="The TV's device key (PEM), with --certificate.")
    ] = None,
    release_key: Annotated[
        list[str] | None, typer.Option("--release-key", help=_RELEASE_KEY_HELP)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Push the brain's outbox and pull the constellation's release since its cursor.

    Registers the device on first use, attested by --certificate and --device-key
    (credentials and the release keys it pins stay in the brain's database); applies only
    answers signed by a pinned release key."""
    from omega.brain import Brain
    from omega.cli._output import emit
    from omega.cli.attest import read_identity
    from omega.errors import ConfigError, InputError
    from omega.sync import run_sync

    if max_pull_bytes < 1:
        raise InputError(f"--max-pull-bytes must be positive, got {max_pull_bytes}")
    if (certificate is None) != (device_key is None):
        raise ConfigError("--certificate and --device-key go together")
    identity = read_identity(certificate, device_key) if certificate and device_key else None
    pinned = release_keys(release_key or [])
    with Brain.open(directory, create=False) as brain:
        result = run_sync(
            brain,
            server,
            fetch_codebook=codebook,
            region=region,
            max_pull_bytes=max_pull_bytes,
            attestation=identity,
            release_keys=pinned or None,
        )
    emit(result.as_dict(), as_json=as_json, title=f"omega sync {directory}")


def register(app: typer.Typer) -> None:
    app.command("sync")(sync)
