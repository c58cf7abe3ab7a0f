"""``omega sync DIR --server URL``: one push + pull round trip for a brain directory;
with ``--every SECONDS``, the device runtime: sync on that interval, ride out outages,
stop cleanly on Ctrl-C or SIGTERM."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from omega.brain import Brain
    from omega.sync import RuntimeStatus, Transport

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


def helper_key(value: str | None, url: str | None) -> bytes | None:
    """The helper's X25519 public key from ``--helper-key HEX`` and/or ``--helper-url``
    (read from its ``/helper/v1/info``; both given, they must agree). ConfigError naming
    the flag."""
    from omega.errors import ConfigError

    pinned = None
    if value is not None:
        try:
            pinned = bytes.fromhex(value.strip())
        except ValueError:
            pinned = b""
        if len(pinned) != 32:
            raise ConfigError(
                "--helper-key must be the helper's public key, 64 hex digits as "
                f"`omega helper key` prints it, got {value!r}"
            )
    if url is None:
        return pinned
    fetched = _helper_info_key(url)
    if pinned is not None and fetched != pinned:
        raise ConfigError(
            f"the helper at --helper-url {url} holds another key than --helper-key: "
            "is it the helper your constellation counts with?"
        )
    return fetched


def _helper_info_key(url: str) -> bytes:
    import httpx

    from omega.errors import ConfigError, TransportError
    from omega.helper.app import info_of

    try:
        answer = httpx.get(url.rstrip("/") + "/helper/v1/info", timeout=10.0)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"--helper-url {url!r} is not a URL: {exc}") from None
    except httpx.HTTPError as exc:
        raise TransportError(f"--helper-url {url}: the helper did not answer ({exc})") from None
    try:
        if answer.status_code != 200:
            raise ValueError(f"it answered {answer.status_code}")
        return info_of(answer.content).public_key
    except ValueError as exc:
        raise ConfigError(f"--helper-url {url} is not an Omega helper ({exc})") from None


def sync(
    directory: Annotated[Path, typer.Argument(help="The brain's directory.")],
    server: Annotated[
        str,
        typer.Option(
            "--server",
            help="The constellation: http://host:port (HTTP/1.1), grpc://host:port (its gRPC "
            "door) or h3://host:port (HTTP/3 over QUIC); several, comma-separated, are one "
            "service at several endpoints: the TV fails over between them.",
        ),
    ],
    region: Annotated[str, typer.Option(help="Region sent at registration and in pulls.")] = (
        "global"
    ),
    max_pull_bytes: Annotated[
        int, typer.Option(help="Byte budget of each pull page (1 … 4194304).")
    ] = 5120,
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
    helper_key_hex: Annotated[
        str | None,
        typer.Option(
            "--helper-key",
            help="Send two-server popularity reports sealed to this helper: its public key, "
            "hex, as `omega helper key` prints it (pinned; without it the TV sends "
            "ε-LDP reports).",
        ),
    ] = None,
    helper_url: Annotated[
        str | None,
        typer.Option(
            help="Read the helper's key from this helper (/helper/v1/info) instead; with "
            "--helper-key, check that the two agree.",
        ),
    ] = None,
    quic_pin: Annotated[
        str | None,
        typer.Option(
            help="For h3:// servers: accept only this certificate public key, "
            "sha256/<base64> (as `omega serve` logs it for its QUIC door).",
        ),
    ] = None,
    quic_ca: Annotated[
        Path | None,
        typer.Option(help="For h3:// servers: trust the certificates in this PEM file."),
    ] = None,
    every: Annotated[
        float | None,
        typer.Option(
            help="Keep running: sync every SECONDS (± 10 %), but never sooner than the "
            "server's next_sync_after (a default omega serve asks for about an hour), back "
            "off after failures, stop on Ctrl-C/SIGTERM.",
        ),
    ] = None,
    backoff_cap: Annotated[
        float, typer.Option(help="With --every: the longest wait after failures, seconds.")
    ] = 900.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Push the brain's outbox and pull the constellation's release since its cursor.

    Registers the device on first use, attested by --certificate and --device-key
    (credentials and the release keys it pins stay in the brain's database); applies only
    answers signed by a pinned release key. With --every, prints one line per sync or
    failure (JSON lines with --json) and the final status when stopped.

    \f
    Long only by its options: each is one annotated parameter, as Typer reads them."""
    from omega.brain import Brain
    from omega.cli._output import emit
    from omega.cli.attest import read_identity
    from omega.errors import ConfigError
    from omega.protocol import MAX_PULL_BYTES
    from omega.protocol.quic import parse_pin
    from omega.sync import run_sync, transport_for

    if not 1 <= max_pull_bytes <= MAX_PULL_BYTES:
        raise ConfigError(
            f"--max-pull-bytes must be 1 … {MAX_PULL_BYTES} (the protocol's bound), "
            f"got {max_pull_bytes}"
        )
    if every is not None and not (every > 0 and math.isfinite(every)):
        raise ConfigError(f"--every must be a positive number of seconds, got {every}")
    if not (backoff_cap >= 1 and math.isfinite(backoff_cap)):
        raise ConfigError(f"--backoff-cap must be at least 1 second, got {backoff_cap}")
    if (certificate is None) != (device_key is None):
        raise ConfigError("--certificate and --device-key go together")
    identity = read_identity(certificate, device_key) if certificate and device_key else None
    pinned = release_keys(release_key or [])
    options: dict[str, Any] = {
        "region": region,
        "max_pull_bytes": max_pull_bytes,
        "attestation": identity,
        "release_keys": pinned or None,
        "helper_key": helper_key(helper_key_hex, helper_url),
    }
    if quic_ca is not None and not quic_ca.is_file():
        raise ConfigError(f"--quic-ca {quic_ca}: no such file")
    if quic_pin is not None:
        try:
            parse_pin(quic_pin)
        except ConfigError as exc:
            raise ConfigError(f"--quic-pin: {exc}") from None
    try:
        transport = transport_for(server, pin=quic_pin, ca=quic_ca)
    except ConfigError as exc:
        raise ConfigError(f"--server: {exc}") from None
    with Brain.open(directory, create=False) as brain:
        if every is not None:
            final = _keep_syncing(brain, transport, every, backoff_cap, codebook, options, as_json)
            emit(final, as_json=as_json, title=f"omega sync {directory} (stopped)")
            return
        result = run_sync(brain, transport, fetch_codebook=codebook, **options)
    emit(result.as_dict(), as_json=as_json, title=f"omega sync {directory}")


def _keep_syncing(
    brain: Brain,
    server: Transport,
    every: float,
    backoff_cap: float,
    codebook: bool,
    options: dict[str, Any],
    as_json: bool,
) -> dict[str, Any]:
    """Run the device runtime in this thread until a signal; its final status."""
    import asyncio
    import signal

    from omega.sync import DeviceRuntime, SyncSchedule

    schedule = SyncSchedule(interval=every, cap=max(1.0, backoff_cap), first_delay=0)
    runtime = DeviceRuntime(
        brain,
        server,
        schedule=schedule,
        fetch_codebook=codebook,
        on_status=_printer(as_json),
        sync_options=options,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runtime.stop)
        try:
            await runtime.run()
        finally:
            await server.aclose()

    asyncio.run(main())
    final = runtime.status().as_dict()
    final.pop("last_result", None)  # printed when it happened
    return final


def _printer(as_json: bool) -> Callable[[RuntimeStatus], None]:
    """An ``on_status`` that prints each completed sync and each failure, once."""
    from omega.cli._output import console, err_console

    seen = [0, 0]  # syncs, failures

    def show(status: RuntimeStatus) -> None:
        if status.syncs > seen[0] and status.last_result is not None:
            event = {"event": "sync", **status.last_result.as_dict()}
        elif status.failures > seen[1]:
            event = {"event": "failure", "error": status.last_error}
        else:
            return
        seen[:] = [status.syncs, status.failures]
        event["next_sync_at"] = status.next_sync_at
        if as_json:
            print(json.dumps(event), flush=True)
        elif event["event"] == "sync":
            console.print(
                f"synced: pushed {event['pushed']}, pulled {event['pulled']}, version "
                f"{event['version']}, outbox {event['outbox_remaining']}; next in "
                f"{_next_in(status)} (the server asks for ≥ {event['next_sync_after']:.0f} s)"
            )
        else:
            err_console.print(f"sync failed ({event['error']}); retrying with backoff")

    return show


def _next_in(status: RuntimeStatus) -> str:
    if status.next_sync_at is None or status.last_success_at is None:
        return "?"
    return f"{status.next_sync_at - status.last_success_at:.0f} s"


def register(app: typer.Typer) -> None:
    app.command("sync")(sync)
