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
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from omega.cli._output import JsonOption, emit
from omega.errors import InputError
from omega.protocol.attestation import (
    DeviceIdentity,
    Manufacturer,
    check_device_id,
    check_model,
    check_name,
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
#: The longest validity ``device`` gives: a TV's life many times over, and far inside the
#: times a certificate may carry (``MAX_TIME``; a server refuses a certificate past it).
MAX_DAYS = 100 * 366


def _write_new(path: Path, data: bytes, *, secret: bool) -> None:
    """Write a file that must not exist yet (keys are never overwritten)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o644)
    except FileExistsError:
        raise InputError(f"--out: {path} exists; refusing to overwrite it") from None
    except OSError as exc:
        raise InputError(f"--out: cannot write {path} ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise InputError(f"--out: cannot write {path} ({exc.strerror})") from None


def _write_all(files: list[tuple[Path, bytes, bool]]) -> None:
    """Write new files (path, data, secret), all or none: a file written before one that
    fails is removed again."""
    written: list[Path] = []
    try:
        for path, data, secret in files:
            _write_new(path, data, secret=secret)
            written.append(path)
    except InputError:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def _out_directory(out: Path, names: list[str]) -> None:
    """Make ``out`` (a directory) unless there is one; refuse at once if any of ``names``
    is in it already, so that nothing is written."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is not a directory")
    for name in names:
        if (out / name).exists():
            raise InputError(f"--out: {out / name} exists; refusing to overwrite it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out: cannot make the directory {out} ({exc.strerror})") from None


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
    return DeviceIdentity(cert, _private_key(device_key, "--device-key"))


@app.command()
def keygen(
    manufacturer_id: Annotated[str, typer.Argument(help="The manufacturer's name, e.g. acme.")],
    key_id: Annotated[str, typer.Argument(help="This key's name, e.g. 2026.")],
    out: Annotated[Path, typer.Option(help="Where to write the private key (PEM, mode 600).")],
    as_json: JsonOption = False,
) -> None:
    """Make a manufacturer key pair; print the public key to register with the server."""
    check_name(manufacturer_id, "MANUFACTURER_ID")
    check_name(key_id, "KEY_ID")
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
    days: Annotated[
        int, typer.Option(help="Days the certificate is valid.", min=1, max=MAX_DAYS)
    ] = 15 * 365,
    device_public_key: Annotated[
        Path | None,
        typer.Option(help="The TV's own public key (made on the TV); default: make a key pair."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Certify one TV, as a factory does: writes OUT/device.cert (and OUT/device.key)."""
    check_device_id(device_id, "DEVICE_ID")
    check_model(model, "--model")
    maker = Manufacturer(
        check_name(manufacturer_id, "--manufacturer"),
        check_name(key_id, "--key-id"),
        _private_key(manufacturer_key, "--key"),
    )
    if device_public_key is not None:
        secret: Ed25519PrivateKey | None = None
        public = _public_key(device_public_key, "--device-public-key")
    else:
        secret = Ed25519PrivateKey.generate()
        public = secret.public_key()
    cert = maker.certify(
        public, device_id=device_id, model=model, now=time.time(), lifetime=days * 86_400
    )
    files = [(out / CERTIFICATE_FILE, msgspec.json.encode(cert), False)]
    if secret is not None:
        files.append((out / DEVICE_KEY_FILE, private_key_pem(secret), True))
    _out_directory(out, [path.name for path, _, _ in files])
    _write_all(files)
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


def _private_key(path: Path, flag: str) -> Ed25519PrivateKey:
    data = _read(path, flag)
    try:
        return load_private_key(data)
    except InputError as exc:
        raise InputError(f"{flag} {path}: {exc}") from None


def _public_key(path: Path, flag: str) -> Ed25519PublicKey:
    data = _read(path, flag)
    try:
        return load_public_key(data)
    except InputError as exc:
        raise InputError(f"{flag} {path}: {exc}") from None


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="attest")
