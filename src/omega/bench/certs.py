"""Self-signed certificates for the HTTP/3 door of a bench's (or a test's) own server, made
fresh in its temporary directory, never kept: an ECDSA P-256 key and a certificate for
one IP address, valid for a day. Devices pin its public key (``SelfSigned.pin``)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from omega.protocol.quic import spki_pin

__all__ = ["SelfSigned", "self_signed"]


@dataclass(frozen=True, slots=True)
class SelfSigned:
    cert: Path
    key: Path
    pin: str  # sha256/<base64> of the certificate's public key


def self_signed(directory: Path, *, host: str = "127.0.0.1", name: str = "omega") -> SelfSigned:
    """A key and a self-signed certificate for ``host`` written under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return SelfSigned(cert=cert_path, key=key_path, pin=spki_pin(certificate))
