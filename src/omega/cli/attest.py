"""``omega attest …``: a TV maker's side of attested registration (docs/security.md).

``keygen`` makes a manufacturer key (the operator registers its public half with
``omega admin manufacturers add``); ``device`` certifies one TV, as a factory does,
writing the files ``omega sync --certificate … --device-key …`` reads.
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from omega.cli._output import JsonOption, emit
from omega.errors import InputError
from omega.protocol.attestation import (
    DeviceIdentity,
    Manufacturer,
    load_private_key,
    load_public_key,
    private_key_pem,
)
from omega.protocol.messages import DeviceCertificate

__all__ = ["app", "read_identity", "register"]

app = typer.Typer(
    help="A TV maker's side of attestation: manufacturer keys and device certificates.",
    no_args_is_help=True,
)

#: The files ``device`` writes into its ``--out`` directory.
CERTIFICATE_FILE = "device.cert"
DEVICE_KEY_FILE = "device.key"


def _write_new(path: Path, data: bytes, *, secret: bool) -> None:
    """Write a file that must not exist yet (keys are never overwritten)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o644)
    except FileExistsError:
        raise InputError(f"{path} exists; refusing to overwrite it") from None
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _read(path: Path, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{flag} {path}: cannot read it ({exc.strerror})") from None


def read_identity(certificate: Path, device_key: Path) -> DeviceIdentity:
    """The device identity in a certificate file and a device key file (``device``'s output)."""
    try:
        cert = msgspec.json.decode(_read(certificate, "--certificate"), type=DeviceCertificate)
    except msgspec.DecodeError as exc:
        raise InputError(
            f"--certificate {certificate} is not a device certificate: {exc}"
        ) from None
    try:
        key = load_private_key(_read(device_key, "--device-key"))
    except InputError as exc:
        raise InputError(f"--device-key {device_key}: {exc}") from None
    return DeviceIdentity(cert, key)


@app.command()
def keygen(
    manufacturer_id: Annotated[str, typer.Argument(help="The manufacturer's name, e.g. acme.")],
    key_id: Annotated[str, typer.Argument(help="This key's name, e.g. 2026.")],
    out: Annotated[Path, typer.Option(help="Where to write the private key (PEM, mode 600).")],
    as_json: JsonOption = False,
) -> None:
    """Make a manufacturer key pair; print the public key to register with the server."""
    maker = Manufacturer.generate(manufacturer_id, key_id)
    _write_new(out, private_key_pem(maker.key), secret=True)
    emit(
        {
            "manufacturer_id": manufacturer_id,
            "key_id": key_id,
            "public_key": base64.b64encode(maker.public_key).decode(),
            "private_key_file": str(out),
        },
        as_json=as_json,
        title="manufacturer key",
    )


@app.command()
def device(
    device_id: Annotated[str, typer.Argument(help="The TV's serial number (unique per maker).")],
    manufacturer_key: Annotated[
        Path, typer.Option("--key", help="The manufacturer's private key (keygen's --out).")
    ],
    manufacturer_id: Annotated[str, typer.Option("--manufacturer", help="As at keygen.")],
    key_id: Annotated[str, typer.Option("--key-id", help="As at keygen.")],
    out: Annotated[Path, typer.Option(help="Directory for device.cert and device.key.")],
    model: Annotated[str, typer.Option(help="The TV's model.")] = "tv",
    days: Annotated[int, typer.Option(help="Days the certificate is valid.", min=1)] = 15 * 365,
    device_public_key: Annotated[
        Path | None,
        typer.Option(help="The TV's own public key (made on the TV); default: make a key pair."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Certify one TV, as a factory does: writes OUT/device.cert (and OUT/device.key)."""
    maker = Manufacturer(
        manufacturer_id, key_id, load_private_key(_read(manufacturer_key, "--key"))
    )
    if device_public_key is not None:
        secret: Ed25519PrivateKey | None = None
        public = load_public_key(_read(device_public_key, "--device-public-key"))
    else:
        secret = Ed25519PrivateKey.generate()
        public = secret.public_key()
    cert = maker.certify(
        public, device_id=device_id, model=model, now=time.time(), lifetime=days * 86_400
    )
    out.mkdir(parents=True, exist_ok=True)
    _write_new(out / CERTIFICATE_FILE, msgspec.json.encode(cert), secret=False)
    if secret is not None:
        _write_new(out / DEVICE_KEY_FILE, private_key_pem(secret), secret=True)
    emit(
        {
            "device_id": device_id,
            "model": model,
            "manufacturer": f"{manufacturer_id}/{key_id}",
            "not_after": cert.not_after,
            "certificate": str(out / CERTIFICATE_FILE),
            "device_key": str(out / DEVICE_KEY_FILE) if secret is not None else "(the TV's own)",
        },
        as_json=as_json,
        title="device certificate",
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="attest")
