"""A TV registers with its manufacturer's certificate: through ``SyncClient`` in-process, and
through the command line as a maker, an operator and a TV would, against a real server."""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from _sync_world import (
    ADMIN_TOKEN,
    Server,
    inprocess_settings,
    open_brain,
    publish_codebook_via,
    start_server,
    watch,
)
from typer.testing import CliRunner

from omega.clock import ManualClock
from omega.constellation import create_app
from omega.errors import AuthError, OmegaError
from omega.protocol.attestation import Manufacturer
from omega.sync import AsgiTransport, SyncClient
from omega.sync.cursors import load_credentials
from omega.sync.transport import Transport

MAKER = Manufacturer.generate("sync-maker", "k1")


async def _trust(transport: Transport, maker: Manufacturer) -> None:
    doc = {"manufacturer_id": maker.manufacturer_id, "key_id": maker.key_id}
    body = json.dumps({**doc, "public_key": maker.public_key.hex()}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN_TOKEN}"}
    answer = await transport.request("POST", "/api/omega/manufacturers", body=body, headers=headers)
    assert answer.status == 201, answer.body


def test_an_attested_tv_syncs_and_stays_one_viewer(tmp_path: Path) -> None:
    clock = ManualClock()
    # Access tokens outlive the hours of viewing below: the last push is made with one.
    settings = inprocess_settings(
        tmp_path / "server", allow_unattested=False, access_token_ttl=30 * 86_400
    )
    app = create_app(settings, clock=clock)
    identity = MAKER.device("SN-1", model="X55", clock=clock)

    async def scenario() -> None:
        async with AsgiTransport(app) as transport:
            await publish_codebook_via(transport)
            await _trust(transport, MAKER)
            tv = open_brain(tmp_path / "tv", clock)
            watch(tv, clock, [0, 1])
            client = SyncClient(tv, transport, attestation=identity)
            await client.fetch_codebook()
            assert (await client.sync()).accepted > 0
            viewer = load_credentials(tv)
            assert viewer is not None
            # The same TV, its storage wiped: it registers again and is the same viewer.
            clock.advance(60)
            wiped = open_brain(tmp_path / "wiped", clock)
            again = await SyncClient(wiped, transport, attestation=identity).sync()
            assert again.viewer_id == viewer.viewer_id
            # A TV without a certificate is refused, with a sentence saying why.
            bare = open_brain(tmp_path / "bare", clock)
            with pytest.raises(AuthError, match="attested devices"):
                await SyncClient(bare, transport).sync()
            # Its maker's key revoked, the TV's next push is refused for good (it must
            # register again with a certificate from a trusted key), nothing stored.
            path = f"/api/omega/manufacturers/{MAKER.manufacturer_id}/keys/{MAKER.key_id}/revoke"
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            assert (await transport.request("POST", path, body=None, headers=admin)).status == 200
            watch(tv, clock, [2, 3])
            with pytest.raises(AuthError, match="manufacturer-key-revoked"):
                await client.sync()
            assert tv.sync.outbox_size() > 0  # kept: nothing was taken
            for brain in (tv, wiped, bare):
                brain.close()

    asyncio.run(scenario())


# -- the command line -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def attesting(tmp_path_factory: pytest.TempPathFactory) -> Server:
    """A server with the defaults: attested devices only."""
    server = start_server(tmp_path_factory.mktemp("attesting"), OMEGA_ALLOW_UNATTESTED="false")
    server.publish_codebook()
    yield server  # type: ignore[misc]
    server.stop()


def _omega() -> typer.Typer:
    from omega.cli.main import app

    return app


def _run(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(_omega(), [*args, "--json"])
    assert result.exit_code == 0, result.output
    parsed: dict[str, object] = json.loads(result.output)
    return parsed


def test_a_maker_an_operator_and_a_tv_on_the_command_line(
    attesting: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMEGA_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("OMEGA_SERVER", attesting.base_url)
    key = tmp_path / "acme-2026.pem"
    made = _run("attest", "keygen", "acme", "2026", "--out", str(key))
    assert key.stat().st_mode & 0o777 == 0o600
    added = _run(
        "admin", "manufacturers", "add", "acme", "2026", "--public-key", str(made["public_key"])
    )
    assert added["revoked_at"] is None
    tv_files = tmp_path / "tv-files"
    _run(
        "attest", "device", "SN-42", "--key", str(key), "--manufacturer", "acme",
        "--key-id", "2026", "--model", "X55", "--out", str(tv_files),
    )  # fmt: skip
    assert (tv_files / "device.key").stat().st_mode & 0o777 == 0o600

    tv = open_brain(tmp_path / "tv", ManualClock())
    watch(tv, tv.clock, [1, 2])  # type: ignore[arg-type]
    tv.close()
    files = ["--certificate", str(tv_files / "device.cert")]
    files += ["--device-key", str(tv_files / "device.key")]
    synced = _run("sync", str(tmp_path / "tv"), "--server", attesting.base_url, *files)
    assert synced["accepted"] == synced["pushed"] > 0

    listed = _run("admin", "manufacturers", "list")["keys"]
    assert [(k["manufacturer_id"], k["devices"]) for k in listed] == [("acme", 1)]  # type: ignore[index, union-attr]
    rekeyed = _run("admin", "devices", "rekey", "acme", "SN-42")  # its key really changed
    assert rekeyed["viewer_id"] == synced["viewer_id"]
    revoked = _run("admin", "manufacturers", "revoke", "acme", "2026")
    assert revoked["revoked_at"] is not None and revoked["devices"] == 1


def test_command_line_mistakes_are_one_sentence_and_an_exit_code(
    attesting: Server, tmp_path: Path
) -> None:
    tv = open_brain(tmp_path / "tv", ManualClock())
    tv.close()
    (tmp_path / "junk.cert").write_text("{}")
    command = [sys.executable, "-c", "from omega.cli.main import run; run()"]
    sync = ["sync", str(tmp_path / "tv"), "--server", attesting.base_url]
    junk = ["--certificate", str(tmp_path / "junk.cert")]
    admin = ["admin", "manufacturers"]
    at = ["--server", attesting.base_url]
    wrong = ["--admin-token", "wrong-token-" + "z" * 16]
    cases = [
        (sync, 7, "attested"),  # no certificate: the server refuses the TV
        ([*sync, *junk], 2, "--device-key"),
        ([*sync, *junk, "--device-key", "x"], 3, "not a device certificate"),
        ([*admin, "list", *at], 2, "--admin-token"),
        ([*admin, "list", *at, *wrong], 7, "admin token"),
        (
            [*admin, "add", "m", "k", "--public-key", "nope", *at, "--admin-token", ADMIN_TOKEN],
            3,
            "key",
        ),
    ]
    wide = {**os.environ, "COLUMNS": "500"}  # one sentence on one line
    for args, code, words in cases:
        done = subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=120, check=False, env=wide
        )
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert "error:" in done.stderr and words in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def _refused(*args: str) -> tuple[int, str]:
    """Run ``omega`` in this process as ``omega.cli.main.run`` does: the exit code and the
    sentence it prints. Anything but an Omega error or a usage error is a traceback."""
    from omega.cli.main import exit_code_for

    result = CliRunner().invoke(_omega(), list(args))
    error = result.exception
    if isinstance(error, OmegaError):
        return int(exit_code_for(error)), str(error)
    assert error is None or isinstance(error, SystemExit), repr(error)  # else a traceback
    return result.exit_code, result.output


def test_attest_refuses_bad_input_naming_the_flag_and_writes_nothing(tmp_path: Path) -> None:
    key = tmp_path / "acme.pem"
    for names, flag in ((["acme corp", "2026"], "MANUFACTURER_ID"), (["acme", "20/26"], "KEY_ID")):
        code, said = _refused("attest", "keygen", *names, "--out", str(key))
        assert (code, flag in said) == (3, True), said
    assert not key.exists()
    (tmp_path / "taken").write_text("mine")
    for out in (tmp_path / "taken", Path("/proc/x")):
        code, said = _refused("attest", "keygen", "acme", "k1", "--out", str(out))
        assert (code, "--out" in said) == (3, True), said
    assert (tmp_path / "taken").read_text() == "mine"
    _run("attest", "keygen", "acme", "k1", "--out", str(key))

    maker = ["--key", str(key), "--manufacturer", "acme", "--key-id", "k1"]
    tv = tmp_path / "tv"
    cases = [
        (["SN-1", *maker, "--out", str(tmp_path / "taken")], 3, "--out"),  # a file
        (["SN-1", *maker, "--out", "/proc/x"], 3, "--out"),
        (["SN-1", *maker, "--out", str(tv), "--days", "100000000000000000"], 2, "--days"),
        (["SN-1", *maker, "--out", str(tv), "--days", "100000000000000"], 2, "--days"),
        (["x" * 300, *maker, "--out", str(tv)], 3, "DEVICE_ID"),
        (["SN-1", *maker, "--out", str(tv), "--model", ""], 3, "--model"),
        (["SN-1", "--key", str(key), "--manufacturer", "acme\n", "--key-id", "k1",
          "--out", str(tv)], 3, "--manufacturer"),
        (["SN-1", *maker[:-1], "2026/x", "--out", str(tv)], 3, "--key-id"),
        (["SN-1", "--key", str(tmp_path / "taken"), *maker[2:], "--out", str(tv)], 3, "--key"),
    ]  # fmt: skip
    for args, code, flag in cases:
        got, said = _refused("attest", "device", *args)
        assert (got, flag in said) == (code, True), (args, said)
    assert not tv.exists()

    # device.key is there but device.cert is not: nothing is written (no orphan
    # certificate for a key that is then refused, no new private key lost).
    tv.mkdir()
    (tv / "device.key").write_text("the TV's key")
    code, said = _refused("attest", "device", "SN-1", *maker, "--out", str(tv))
    assert code == 3 and "device.key exists" in said, said
    assert sorted(p.name for p in tv.iterdir()) == ["device.key"]
    assert (tv / "device.key").read_text() == "the TV's key"


@pytest.fixture
def not_omega(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server on loopback that is not a constellation: it serves files, so
    GET /<answer>/api/omega/manufacturers answers 200 with what <answer> holds."""
    for name, body in (("html", "<html>hello</html>"), ("list", "[1, 2]")):
        (tmp_path / name / "api" / "omega").mkdir(parents=True)
        (tmp_path / name / "api" / "omega" / "manufacturers").write_text(body)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_admin_refuses_an_answer_that_is_not_a_json_object(not_omega: str) -> None:
    for answer in ("html", "list"):
        server = ["--server", f"{not_omega}/{answer}", "--admin-token", "t" * 32]
        code, said = _refused("admin", "manufacturers", "list", *server)
        assert code == 8 and "--server" in said and "JSON object" in said, said


def test_admin_revoke_cannot_reach_another_route(
    attesting: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMEGA_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("OMEGA_SERVER", attesting.base_url)
    before = httpx.get(attesting.base_url + "/api/omega/release-keys").json()
    for names, flag in (
        (["../release-keys/rotate#", "x"], "MANUFACTURER_ID"),
        (["acme", "../../../release-keys/rotate?"], "KEY_ID"),
        (["acme\n", "k1"], "MANUFACTURER_ID"),
    ):
        code, said = _refused("admin", "manufacturers", "revoke", *names)
        assert code == 3 and flag in said and "1-64 of" in said, said
    after = httpx.get(attesting.base_url + "/api/omega/release-keys").json()
    assert after == before  # the release key was not rotated
