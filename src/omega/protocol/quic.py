"""The rules both ends of the HTTP/3 door share: what may travel as 0-RTT early data, and
certificate pins. Pure functions, no I/O.

**Early data** (TLS 1.3 0-RTT) can be captured and replayed by anyone on the path, so a
server may act on it only where a replay is harmless (RFC 8470): the safe reads a TV
makes when it wakes — the release delta (``GET /api/omega/patterns``), the codebook and
the release keys. Anything else that arrives as early data is answered ``425 Too Early``
and the client sends it again once the handshake is complete (a push changes state: it
always waits for the handshake).

**Pins** name a server's public key the way HPKP and curl's ``--pinnedpubkey`` do: the
SHA-256 of the certificate's DER-encoded SubjectPublicKeyInfo, base64, written
``sha256/<base64>``. A pin survives renewing the certificate with the same key, and
``openssl`` computes the same value (docs/http3.md shows how).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from omega.errors import ConfigError

__all__ = [
    "EARLY_DATA_PATHS",
    "PIN_PREFIX",
    "TOO_EARLY",
    "may_be_early",
    "parse_pin",
    "spki_pin",
]

#: Paths whose GET may be answered from early data (a replay reads, never writes).
EARLY_DATA_PATHS = frozenset(
    {"/api/omega/patterns", "/api/omega/codebook", "/api/omega/release-keys"}
)
#: RFC 8470's status for a request the server will not process as early data.
TOO_EARLY = 425
PIN_PREFIX = "sha256/"
_DIGEST_BYTES = 32
_PIN_CHARS = 44  # base64 of 32 bytes


def may_be_early(method: str, target: str) -> bool:
    """Whether ``method target`` (a path with an optional query) may be answered from
    0-RTT early data: a GET of one of :data:`EARLY_DATA_PATHS`."""
    return method.upper() == "GET" and urlsplit(target).path in EARLY_DATA_PATHS


def spki_pin(certificate: x509.Certificate) -> str:
    """The pin of ``certificate``'s public key: ``sha256/`` + base64(SHA-256(SPKI DER))."""
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PIN_PREFIX + base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def parse_pin(pin: str) -> bytes:
    """The 32-byte digest a ``sha256/<base64>`` pin names; ConfigError in one sentence
    if it is not one (curl's ``sha256//`` spelling is accepted too)."""
    text = pin.strip()
    if not text.startswith(PIN_PREFIX):
        raise ConfigError(f"a certificate pin looks like sha256/<base64>, got {pin!r}")
    encoded = text[len(PIN_PREFIX) :]
    if len(encoded) == _PIN_CHARS + 1 and encoded.startswith("/"):  # curl's sha256//…
        encoded = encoded[1:]
    try:
        digest = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"the certificate pin {pin!r} is not valid base64") from None
    if len(digest) != _DIGEST_BYTES:
        raise ConfigError(f"the certificate pin {pin!r} is not a SHA-256 digest (32 bytes)")
    return digest
