"""Transports named by URL: one string says which door of the constellation a device
uses, and how many endpoints it knows.

====================  ==============================================================
``http://host:port``  HTTP/1.1 (:class:`~omega.sync.transport.HttpTransport`); also
``https://…``
``grpc://host:port``  gRPC, ``StreamSync`` per device (``GrpcTransport``; plaintext, as
                      ``omega serve --grpc-port`` listens: put TLS in a proxy)
``h3://host:port``    HTTP/3 over QUIC to ``https://host:port`` (``Http3Transport``:
                      ``pin`` and ``ca`` check its certificate; 0-RTT for pulls)
``a,b,…``             one service at several endpoints, any mix of the above
                      (:class:`~omega.sync.failover.FailoverTransport`)
====================  ==============================================================

``omega sync --server`` and ``DeviceRuntime(brain, "grpc://…")`` take these strings.
grpcio and aioquic load only when a URL names their door.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from omega.errors import ConfigError
from omega.sync.failover import FailoverTransport
from omega.sync.transport import HttpTransport, Transport, check_base_url

__all__ = ["Endpoint", "parse_endpoints", "transport_for"]

Door = Literal["http", "grpc", "h3"]
_SCHEMES: dict[str, Door] = {"http": "http", "https": "http", "grpc": "grpc", "h3": "h3"}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One door of one endpoint: ``address`` is what its transport is given."""

    door: Door
    address: str


def parse_endpoints(spec: str) -> list[Endpoint]:
    """The endpoints a comma-separated ``spec`` names; ConfigError for any it cannot use."""
    parts = [part.strip() for part in spec.split(",")]
    if not spec.strip() or not all(parts):
        raise ConfigError(f"a server is URL[,URL…] (http://, grpc:// or h3://), got {spec!r}")
    return [_endpoint(part) for part in parts]


def _endpoint(url: str) -> Endpoint:
    parts = urlsplit(url)
    door = _SCHEMES.get(parts.scheme)
    if door is None:
        raise ConfigError(f"{url!r}: a server URL starts with http://, https://, grpc:// or h3://")
    if door == "http":
        return Endpoint("http", check_base_url(url))
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ConfigError(f"{url!r}: a {door}:// URL is {door}://host:port, nothing after it")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if door == "grpc":
        return Endpoint("grpc", f"{host}:{port}")
    return Endpoint("h3", f"https://{host}:{port}")


def transport_for(spec: str, *, pin: str | None = None, ca: Path | None = None) -> Transport:
    """The transport ``spec`` names (see the module docstring); ``pin`` (``sha256/…`` of
    the server's public key) and ``ca`` (a PEM file) apply to its HTTP/3 endpoints."""
    endpoints = parse_endpoints(spec)
    if (pin is not None or ca is not None) and not any(e.door == "h3" for e in endpoints):
        raise ConfigError("a certificate pin or CA file is for h3:// servers; none is named")
    transports = [_open(endpoint, pin=pin, ca=ca) for endpoint in endpoints]
    return transports[0] if len(transports) == 1 else FailoverTransport(transports)


def _open(endpoint: Endpoint, *, pin: str | None, ca: Path | None) -> Transport:
    if endpoint.door == "grpc":
        from omega.sync.grpc_transport import GrpcTransport

        return GrpcTransport(endpoint.address)
    if endpoint.door == "h3":
        from omega.sync.h3_transport import Http3Transport

        return Http3Transport(endpoint.address, pin=pin, ca=ca)
    return HttpTransport(endpoint.address)
