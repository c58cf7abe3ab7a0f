"""``omega admin …``: operate a running constellation with its admin token.

For now the manufacturer keys whose device certificates the server accepts
(``omega admin manufacturers add|list|revoke``) and the attested devices bound to their
device keys (``omega admin devices rekey``); docs/security.md.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from omega.cli._output import JsonOption, emit, emit_rows
from omega.errors import (
    AuthError,
    ConfigError,
    InputError,
    RemoteProtocolError,
    ServerError,
    TransportError,
)
from omega.protocol.attestation import check_device_id, check_name

__all__ = ["app", "register"]

app = typer.Typer(help="Operate a running constellation (admin token).", no_args_is_help=True)
manufacturers = typer.Typer(
    help="Manufacturer keys whose device certificates the server accepts.", no_args_is_help=True
)
app.add_typer(manufacturers, name="manufacturers")
devices = typer.Typer(help="Attested devices, each bound to its device key.", no_args_is_help=True)
app.add_typer(devices, name="devices")

ServerOption = Annotated[
    str, typer.Option("--server", envvar="OMEGA_SERVER", help="The constellation's URL.")
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--admin-token",
        envvar="OMEGA_ADMIN_TOKEN",
        help="The admin token (`omega serve` writes it to <data-dir>/admin-token).",
    ),
]
_DEFAULT_SERVER = "http://127.0.0.1:8000"


def _call(server: str, token: str | None, method: str, path: str, body: Any = None) -> Any:
    """One admin request; its JSON object, or the Omega error its problem stands for."""
    if not token:
        raise ConfigError("give --admin-token (or set OMEGA_ADMIN_TOKEN)")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        answer = httpx.request(
            method, server.rstrip("/") + path, json=body, headers=headers, timeout=30
        )
    except httpx.InvalidURL as exc:
        raise ConfigError(f"--server {server!r} is not a URL: {exc}") from None
    except httpx.HTTPError as exc:
        raise TransportError(f"{server}: {exc or type(exc).__name__}") from None
    doc = _object(answer)
    if answer.status_code < 400:
        if doc is None:
            raise RemoteProtocolError(
                f"--server {server} answered {answer.status_code} with "
                f"{answer.headers.get('content-type') or 'untyped data'}, not the JSON object "
                "a constellation sends: is it an Omega constellation?"
            )
        return doc
    detail = str(doc.get("detail", answer.text)) if doc is not None else answer.text[:300]
    if answer.status_code == 401:
        raise AuthError(f"the server refused the admin token: {detail}")
    if answer.status_code < 500:
        raise InputError(detail)
    raise ServerError(answer.status_code, detail)


def _object(answer: httpx.Response) -> dict[str, Any] | None:
    """The answer's body if it is a JSON object."""
    try:
        doc = answer.json()
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


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
    server: ServerOption = _DEFAULT_SERVER,
    admin_token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Trust a manufacturer key: devices it certifies may register."""
    doc = {
        "manufacturer_id": check_name(manufacturer_id, "MANUFACTURER_ID"),
        "key_id": check_name(key_id, "KEY_ID"),
        "public_key": _public_key(public_key, public_key_file),
    }
    added = _call(server, admin_token, "POST", "/api/omega/manufacturers", doc)
    emit(added, as_json=as_json, title="manufacturer key")


@manufacturers.command("list")
def list_keys(
    server: ServerOption = _DEFAULT_SERVER,
    admin_token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every manufacturer key, revoked ones too, with the devices each attested."""
    keys = _call(server, admin_token, "GET", "/api/omega/manufacturers").get("keys")
    if not isinstance(keys, list):
        raise RemoteProtocolError(f"--server {server} answered without a list of keys")
    emit_rows(keys, as_json=as_json, title="manufacturer keys", key="keys")


@manufacturers.command("revoke")
def revoke(
    manufacturer_id: Annotated[str, typer.Argument()],
    key_id: Annotated[str, typer.Argument()],
    server: ServerOption = _DEFAULT_SERVER,
    admin_token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a key: its certificates are refused, its devices get no new tokens and their
    patterns leave the next release."""
    maker, key = _segment(manufacturer_id, "MANUFACTURER_ID"), _segment(key_id, "KEY_ID")
    path = f"/api/omega/manufacturers/{maker}/keys/{key}/revoke"
    emit(_call(server, admin_token, "POST", path), as_json=as_json, title="revoked")


@devices.command("rekey")
def rekey(
    manufacturer_id: Annotated[str, typer.Argument(help="e.g. acme")],
    device_id: Annotated[str, typer.Argument(help="The TV's serial, as in its certificate.")],
    server: ServerOption = _DEFAULT_SERVER,
    admin_token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Forget a device's key: its next registration, with a certificate for a new device
    key, keeps its viewer (a TV whose key really changed). Until then any certificate for
    that serial may claim the viewer: re-key only a TV about to register."""
    doc = {
        "manufacturer_id": check_name(manufacturer_id, "MANUFACTURER_ID"),
        "device_id": check_device_id(device_id, "DEVICE_ID"),
    }
    answer = _call(server, admin_token, "POST", "/api/omega/devices/rekey", doc)
    emit(answer, as_json=as_json, title="re-keyed device")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="admin")
