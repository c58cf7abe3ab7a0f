"""The HTTP/3 door's set-up: its certificate checked at start, its port, its tickets, and
the early-data and pin rules it shares with devices (the live door: tests/sync)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aioquic.tls import CipherSuite, SessionTicket
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from omega.bench.certs import self_signed
from omega.constellation import Settings, create_app
from omega.constellation.doors.http3 import PORT_FILE, TicketStore, load_server_tls
from omega.errors import ConfigError
from omega.protocol.quic import may_be_early, parse_pin, spki_pin
from omega.sync.h3_transport import Http3Transport
from omega.sync.transport import AsgiTransport

OMEGA = [sys.executable, "-m", "omega.cli"]


def _settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "admin_token": "http3-admin-token-0123",
        "federation_interval": 0,
        "gc_freeze": False,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def _quic(cert: Path, key: Path) -> list[str]:
    return ["--quic-cert", str(cert), "--quic-key", str(key)]


def test_bad_certificate_files_stop_omega_serve_with_one_sentence(tmp_path: Path) -> None:
    good, other = self_signed(tmp_path / "a"), self_signed(tmp_path / "b")
    cases = [
        ([good.key, good.key], "is not a PEM certificate"),
        ([tmp_path / "missing.pem", good.key], "cannot read the HTTP/3 certificate"),
        ([good.cert, good.cert], "is not an unencrypted PEM private key"),
        ([good.cert, other.key], "does not belong to the certificate"),
    ]
    for (cert, key), words in cases:
        done = subprocess.run(
            [*OMEGA, "serve", "--data-dir", str(tmp_path / "data"), *_quic(cert, key)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert words in " ".join(done.stderr.split()), done.stderr
        assert "Traceback" not in done.stderr
    only_cert = subprocess.run(
        [*OMEGA, "serve", "--data-dir", str(tmp_path / "data"), "--quic-cert", str(good.cert)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert only_cert.returncode == 2 and "--quic-key" in only_cert.stderr
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = str(busy.getsockname()[1])
        args = ["--data-dir", str(tmp_path / "data"), *_quic(good.cert, good.key)]
        taken = subprocess.run(
            [*OMEGA, "serve", *args, "--quic-port", port],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert taken.returncode == 2 and "cannot listen for HTTP/3" in taken.stderr, taken.stderr


def test_omega_serve_opens_the_door_and_prints_its_pin(tmp_path: Path) -> None:
    tls = self_signed(tmp_path / "tls")
    data_dir = tmp_path / "data"
    command = [*OMEGA, "serve", "--port", "0", "--data-dir", str(data_dir), "--json"]
    command += [*_quic(tls.cert, tls.key), "--quic-port", "0", "--federation-interval", "0"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline()]
        while lines[-1] not in ("}\n", ""):
            lines.append(process.stdout.readline())
        summary = json.loads("".join(lines))
        assert summary["http3_pin"] == tls.pin
        deadline = time.monotonic() + 60
        while not (data_dir / PORT_FILE).exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        url = f"https://127.0.0.1:{int((data_dir / PORT_FILE).read_text())}"

        async def health() -> int:
            async with Http3Transport(url, pin=summary["http3_pin"]) as transport:
                answer = await transport.request("GET", "/healthz", body=None, headers={})
                return answer.status

        assert asyncio.run(health()) == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()
    assert process.returncode == 0
    assert not (data_dir / PORT_FILE).exists()


def test_the_door_opens_in_the_lifespan_and_closes_with_it(tmp_path: Path) -> None:
    tls = self_signed(tmp_path / "tls")
    settings = _settings(tmp_path / "data", quic_cert=tls.cert, quic_key=tls.key, quic_port=0)
    app = create_app(settings)
    port_file = settings.data_dir / PORT_FILE

    async def scenario() -> int:
        async with AsgiTransport(app):
            port = int(port_file.read_text())
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken,
                pytest.raises(OSError, match="in use"),
            ):
                taken.bind(("127.0.0.1", port))
        return port

    port = asyncio.run(scenario())
    assert not port_file.exists()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as free:
        free.bind(("127.0.0.1", port))  # the door let go of its port

    # The lifespan may run again (a restarted app): the door's metrics register anew.
    asyncio.run(scenario())


def test_a_door_that_cannot_start_is_a_config_error(tmp_path: Path) -> None:
    tls = self_signed(tmp_path / "tls")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        for overrides, words in [
            ({"quic_cert": tls.cert, "quic_key": tls.key, "quic_port": port}, "cannot listen"),
            ({"quic_cert": tls.cert}, "both a certificate and its key"),
            ({"quic_cert": tls.key, "quic_key": tls.key}, "not a PEM certificate"),
        ]:
            app = create_app(_settings(tmp_path / "data", **overrides))

            async def start(app: object = app) -> None:
                async with AsgiTransport(app):
                    pass

            with pytest.raises(ConfigError, match=words):
                asyncio.run(start())


def test_without_a_certificate_there_is_no_door(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "data")

    async def scenario() -> None:
        async with AsgiTransport(create_app(settings)) as http:
            assert not (settings.data_dir / PORT_FILE).exists()
            metrics = await http.request("GET", "/metrics", body=None, headers={})
            assert b"omega_http3" not in metrics.body

    asyncio.run(scenario())


def _ticket(label: bytes) -> SessionTicket:
    now = datetime.datetime.now(datetime.UTC)
    return SessionTicket(
        age_add=0,
        cipher_suite=CipherSuite.AES_128_GCM_SHA256,
        not_valid_after=now + datetime.timedelta(hours=1),
        not_valid_before=now,
        resumption_secret=b"s" * 32,
        server_name="127.0.0.1",
        ticket=label,
    )


def test_a_ticket_resumes_once_and_the_oldest_go_first() -> None:
    store = TicketStore(capacity=2)
    for label in (b"a", b"b", b"c"):
        store.add(_ticket(label))
    assert len(store) == 2
    assert store.pop(b"a") is None  # pushed out by the newer two
    assert store.pop(b"b") is not None
    assert store.pop(b"b") is None  # spent: a replayed handshake gets a full one


def test_which_requests_may_come_as_early_data() -> None:
    assert may_be_early("GET", "/api/omega/patterns?since=4&max_bytes=5120")
    assert may_be_early("get", "/api/omega/codebook")
    assert may_be_early("GET", "/api/omega/release-keys")
    assert not may_be_early("POST", "/api/omega/patterns")
    assert not may_be_early("POST", "/api/omega/sync")
    assert not may_be_early("GET", "/api/omega/viewers/v1")
    assert not may_be_early("GET", "/api/omega/stats")


def test_pins_name_the_public_key(tmp_path: Path) -> None:
    tls = self_signed(tmp_path / "tls")
    certificate = x509.load_pem_x509_certificate(tls.cert.read_bytes())
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashlib.sha256(spki).digest()
    assert spki_pin(certificate) == tls.pin == "sha256/" + base64.b64encode(digest).decode()
    assert parse_pin(tls.pin) == digest
    assert parse_pin("sha256//" + tls.pin.removeprefix("sha256/")) == digest  # curl's form
    assert load_server_tls(tls.cert, tls.key).certificate == certificate
    for bad, words in [
        ("md5/abc", "sha256/<base64>"),
        ("sha256/not base64!", "not valid base64"),
        ("sha256/" + base64.b64encode(b"short").decode(), "32 bytes"),
    ]:
        with pytest.raises(ConfigError, match=words):
            parse_pin(bad)
