"""``omega admin …``: operate a running constellation with its admin token.

The manufacturer keys whose device certificates the server accepts
(``manufacturers add|list|revoke``), attested devices (``devices rekey``), the signing
keys (``keys rotate``); the codebook (:mod:`omega.cli.admin_codebook`) and the fleet —
stats, rounds, prune, consensus (:mod:`omega.cli.admin_fleet`) and viewers
(:mod:`omega.cli.admin_viewers`). docs/deploy.md walks a deployment from empty with
them; docs/security.md covers the keys.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Annotated

import typer

from omega.cli import admin_codebook, admin_fleet, admin_viewers
from omega.cli._admin_client import (
    DEFAULT_SERVER,
    ServerOption,
    TokenFileOption,
    TokenOption,
    connect,
)
from omega.cli._output import JsonOption, emit, emit_rows
from omega.errors import ConfigError, InputError, RemoteProtocolError
from omega.protocol.attestation import check_device_id, check_name

__all__ = ["app", "register"]

app = typer.Typer(help="Operate a running constellation (admin token).", no_args_is_help=True)
manufacturers = typer.Typer(
    help="Manufacturer keys whose device certificates the server accepts.", no_args_is_help=True
)
app.add_typer(manufacturers, name="manufacturers")
devices = typer.Typer(help="Attested devices, each bound to its device key.", no_args_is_help=True)
app.add_typer(devices, name="devices")
keys = typer.Typer(help="The keys the server signs tokens and releases with.", no_args_is_help=True)
app.add_typer(keys, name="keys")
admin_codebook.attach(app)
admin_fleet.attach(app)
admin_viewers.attach(app)


def _segment(value: str, what: str) -> str:
    """A name checked as the server checks it, then quoted for a URL path: a name must
    never reach another route (``../release-keys/rotate#``)."""
    return urllib.parse.quote(check_name(value, what), safe="")


def _public_key(text: str | None, path: Path | None) -> str:
    if (text is None) == (path is None):
        raise ConfigError("give exactly one of --public-key and --public-key-file")
    if path is None:
        assert text is not None
        return text
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--public-key-file {path}: cannot read it ({exc})") from None


@manufacturers.command("add")
def add(
    manufacturer_id: Annotated[str, typer.Argument(help="e.g. acme")],
    key_id: Annotated[str, typer.Argument(help="e.g. 2026")],
    public_key: Annotated[
        str | None, typer.Option(help="Ed25519 public key: base64 or hex of 32 bytes, or PEM.")
    ] = None,
    public_key_file: Annotated[
        Path | None, typer.Option(help="A file holding the public key (PEM, base64 or hex).")
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    admin_token: TokenOption = None,
    admin_token_file: TokenFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Trust a manufacturer key: devices it certifies may register."""
    doc = {
        "manufacturer_id": check_name(manufacturer_id, "MANUFACTURER_ID"),
        "key_id": check_name(key_id, "KEY_ID"),
        "public_key": _public_key(public_key, public_key_file),
    }
    api = connect(server, admin_token, admin_token_file)
    emit(
        api.call("POST", "/api/omega/manufacturers", doc), as_json=as_json, title="manufacturer key"
    )


@manufacturers.command("list")
def list_keys(
    server: ServerOption = DEFAULT_SERVER,
    admin_token: TokenOption = None,
    admin_token_file: TokenFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every manufacturer key, revoked ones too, with the devices each attested."""
    api = connect(server, admin_token, admin_token_file)
    found = api.call("GET", "/api/omega/manufacturers").get("keys")
    if not isinstance(found, list):
        raise RemoteProtocolError(f"--server {server} answered without a list of keys")
    emit_rows(found, as_json=as_json, title="manufacturer keys", key="keys")


@manufacturers.command("revoke")
def revoke(
    manufacturer_id: Annotated[str, typer.Argument()],
    key_id: Annotated[str, typer.Argument()],
    server: ServerOption = DEFAULT_SERVER,
    admin_token: TokenOption = None,
    admin_token_file: TokenFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a key: its certificates are refused, its devices get no new tokens and their
    patterns leave the next release."""
    maker, key = _segment(manufacturer_id, "MANUFACTURER_ID"), _segment(key_id, "KEY_ID")
    api = connect(server, admin_token, admin_token_file)
    path = f"/api/omega/manufacturers/{maker}/keys/{key}/revoke"
    emit(api.call("POST", path), as_json=as_json, title="revoked")


@devices.command("rekey")
def rekey(
    manufacturer_id: Annotated[str, typer.Argument(help="e.g. acme")],
    device_id: Annotated[str, typer.Argument(help="The TV's serial, as in its certificate.")],
    server: ServerOption = DEFAULT_SERVER,
    admin_token: TokenOption = None,
    admin_token_file: TokenFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Forget a device's key: its next registration, with a certificate for a new device
    key, keeps its viewer (a TV whose key really changed). Until then any certificate for
    that serial may claim the viewer: re-key only a TV about to register."""
    doc = {
        "manufacturer_id": check_name(manufacturer_id, "MANUFACTURER_ID"),
        "device_id": check_device_id(device_id, "DEVICE_ID"),
    }
    api = connect(server, admin_token, admin_token_file)
    emit(
        api.call("POST", "/api/omega/devices/rekey", doc), as_json=as_json, title="re-keyed device"
    )


@keys.command("rotate")
def rotate(
    release: Annotated[
        bool,
        typer.Option(
            "--release",
            help="Rotate the release key that seals answers to TVs, not the token key.",
        ),
    ] = False,
    server: ServerOption = DEFAULT_SERVER,
    admin_token: TokenOption = None,
    admin_token_file: TokenFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sign with a new key from now on; the old ones still verify (tokens issued and
    releases sealed before stay valid; docs/deploy.md, Key rotation)."""
    api = connect(server, admin_token, admin_token_file)
    path = "/api/omega/release-keys/rotate" if release else "/api/omega/keys/rotate"
    rotated = api.call("POST", path)
    emit(rotated, as_json=as_json, title="release key" if release else "token signing key")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="admin")
