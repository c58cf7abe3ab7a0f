"""``omega admin …`` against a real server: each subcommand's answer, and its one-sentence
refusal of bad input (the exit code ``omega`` would give, the flag it names)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from _constellation_harness import (
    ADMIN_TOKEN,
    MANUFACTURER,
    Device,
    ServerProcess,
    preference,
    start_server,
)
from typer.testing import CliRunner

from omega.cli.main import app, exit_code_for
from omega.errors import OmegaError
from omega.protocol import codec
from omega.protocol.messages import Registration


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own: these tests start from no codebook."""
    process = start_server(tmp_path_factory.mktemp("admin-cli"))
    yield process
    process.stop()


@pytest.fixture
def env(fresh: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> ServerProcess:
    monkeypatch.setenv("OMEGA_SERVER", fresh.base_url)
    monkeypatch.setenv("OMEGA_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.delenv("OMEGA_ADMIN_TOKEN_FILE", raising=False)
    return fresh


def omega(*args: str) -> tuple[int, str, str]:
    """``omega ARGS`` in this process as ``omega.cli.main.run`` runs it: the exit code,
    stdout, and the error's sentence (or stderr). A traceback fails the test."""
    result = CliRunner().invoke(app, list(args))
    error = result.exception
    if isinstance(error, OmegaError):
        return int(exit_code_for(error)), result.stdout, str(error)
    assert error is None or isinstance(error, SystemExit), repr(error)
    return result.exit_code, result.stdout, result.stderr


def answer(*args: str) -> dict[str, object]:
    code, out, err = omega(*args, "--json")
    assert code == 0, err
    parsed: dict[str, object] = json.loads(out)
    return parsed


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the token and the server ----------------------------------------------------------------
def test_the_token_comes_from_a_flag_the_environment_or_a_file(
    env: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OMEGA_ADMIN_TOKEN")
    code, _, said = omega("admin", "stats")
    assert code == 2 and "--admin-token-file" in said and "admin-token" in said, said
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")  # as `omega serve` writes it
    assert answer("admin", "stats", "--admin-token-file", str(token_file))["version"] == 0
    code, _, said = omega("admin", "stats", "--admin-token", "t" * 32, "--admin-token-file", "x")
    assert code == 2 and "not both" in said, said
    code, _, said = omega("admin", "stats", "--admin-token-file", str(tmp_path / "missing"))
    assert code == 2 and "--admin-token-file" in said and "cannot read" in said, said
    (tmp_path / "empty").write_text("\n")
    code, _, said = omega("admin", "stats", "--admin-token-file", str(tmp_path / "empty"))
    assert code == 2 and "is empty" in said, said


def test_a_wrong_token_and_an_unreachable_server_are_one_sentence_each(
    env: ServerProcess,
) -> None:
    commands = [["stats"], ["codebook", "show"], ["viewers", "list"], ["rounds", "run"],
                ["prune", "--max-age", "1d"], ["keys", "rotate"], ["consensus", "p1"],
                ["release"], ["viewers", "revoke", "v1"]]  # fmt: skip
    for command in commands:
        code, _, said = omega("admin", *command, "--admin-token", "wrong-" + "x" * 26)
        assert code == 7 and "refused the admin token" in said, (command, said)
        nowhere = f"http://127.0.0.1:{_closed_port()}"
        code, _, said = omega("admin", *command, "--server", nowhere)
        assert code == 6 and "cannot reach the constellation" in said, (command, said)
    code, _, said = omega("admin", "stats", "--server", "ftp://example.org")
    assert code == 2 and "--server" in said, said


# -- before a codebook -----------------------------------------------------------------------
def test_without_a_codebook_show_and_rounds_say_how_to_publish_one(env: ServerProcess) -> None:
    assert answer("admin", "stats")["codebook_id"] is None
    for command in (["codebook", "show"], ["rounds", "run"]):
        code, _, said = omega("admin", *command)
        assert code == 3 and "omega admin codebook publish --catalog" in said, said


def test_nothing_to_do_is_a_sentence_and_exit_0(env: ServerProcess) -> None:
    code, out, err = omega("admin", "prune", "--max-age", "30d", "--json")
    assert code == 0 and json.loads(out)["older"] == 0
    assert "nothing to do" in err


# -- bad input, refused before anything is sent -----------------------------------------------
@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["codebook", "publish"], "--catalog"),
        (["codebook", "publish", "--catalog", "a.csv", "--codebook", "b.json"], "--codebook"),
        (["codebook", "publish", "--catalog", "a.csv", "--cells", "0"], "--cells"),
        (["prune"], "--min-quality"),
        (["prune", "--min-quality", "1.5"], "--min-quality"),
        (["prune", "--min-quality", "0"], "--min-quality"),
        (["prune", "--max-age", "soon"], "--max-age"),
        (["prune", "--max-age", "0"], "--max-age"),
        (["release", "--limit", "0"], "--limit"),
        (["viewers", "list", "--limit", "5000"], "--limit"),
        (["viewers", "show", "../stats"], "VIEWER_ID"),
        (["viewers", "revoke", "a b"], "VIEWER_ID"),
        (["consensus", "p" * 200], "PATTERN_ID"),
    ],
)
def test_bad_options_name_the_flag(env: ServerProcess, args: list[str], flag: str) -> None:
    code, _, said = omega("admin", *args)
    assert code == 2 and flag in said, said


def test_rounds_run_max_rounds_is_a_usage_error(env: ServerProcess) -> None:
    code, _, said = omega("admin", "rounds", "run", "--wait", "--max-rounds", "0")
    assert code == 2 and "--max-rounds" in said, said


def test_codebook_publish_refuses_files_that_are_not_codebooks(
    env: ServerProcess, tmp_path: Path
) -> None:
    code, _, said = omega("admin", "codebook", "publish", "--catalog", str(tmp_path / "none.csv"))
    assert code == 3 and "--catalog" in said and "no such file" in said, said
    (tmp_path / "empty.csv").write_text("item_id,title\n")
    code, _, said = omega("admin", "codebook", "publish", "--catalog", str(tmp_path / "empty.csv"))
    assert code == 3 and "empty.csv" in said, said
    bad = {
        "text.json": "not json",
        "list.json": "[1, 2]",
        "b64.json": json.dumps({"codebook_id": "c", "dim": 2, "k": 1, "centroids_f16": "%%"}),
    }
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        code, _, said = omega("admin", "codebook", "publish", "--codebook", str(tmp_path / name))
        assert code == 3 and f"--codebook {tmp_path / name}" in said, said
    np.save(tmp_path / "flat.npy", np.zeros(4, dtype=np.float32))
    code, _, said = omega("admin", "codebook", "publish", "--codebook", str(tmp_path / "flat.npy"))
    assert code == 3 and "2-d float array" in said, said
    # The server's own check, passed on as its sentence: 3 cells of 2 need 12 bytes.
    short = {"codebook_id": "c", "dim": 2, "k": 3, "centroids_f16": "AAAA"}
    (tmp_path / "short.json").write_text(json.dumps(short))
    code, _, said = omega(
        "admin", "codebook", "publish", "--codebook", str(tmp_path / "short.json")
    )
    assert code == 3 and "k*dim*2 = 12" in said, said
    assert answer("admin", "stats")["codebook_id"] is None  # nothing was published


# -- with a codebook and viewers -------------------------------------------------------------
def test_publish_a_codebook_file_then_rounds_release_and_consensus(
    env: ServerProcess, tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    centroids = rng.normal(size=(16, 8)).astype(np.float32)
    np.save(tmp_path / "cells.npy", centroids)
    published = answer("admin", "codebook", "publish", "--codebook", str(tmp_path / "cells.npy"))
    shown = answer("admin", "codebook", "show")
    assert (shown["codebook_id"], shown["k"], shown["dim"]) == (published["codebook_id"], 16, 8)
    # The document the server hands out publishes again as it is (a later sequence).
    document = httpx.get(
        env.base_url + "/api/omega/codebook",
        headers={"Authorization": f"Bearer {_viewer_token(env)}"},
    ).json()
    (tmp_path / "codebook.json").write_text(json.dumps(document))
    again = answer("admin", "codebook", "publish", "--codebook", str(tmp_path / "codebook.json"))
    assert again["codebook_id"] == published["codebook_id"]
    assert int(str(again["sequence"])) > int(str(published["sequence"]))

    codebook_id = str(published["codebook_id"])
    with httpx.Client(base_url=env.base_url, timeout=30) as client:
        for _ in range(3):
            device = Device.register(client)
            push = device.push([preference(5)], codebook_id=codebook_id)
            device.sync(push)
    ran = answer("admin", "rounds", "run", "--wait")
    assert ran["status"] == "released" and ran["applied"] == 3
    code, out, err = omega("admin", "rounds", "run", "--json")
    assert code == 0 and json.loads(out)["status"] == "unchanged" and "nothing to do" in err
    release = answer("admin", "release")
    patterns = release["patterns"]
    assert isinstance(patterns, list) and len(patterns) == 1
    why = answer("admin", "consensus", str(patterns[0]["id"]))
    assert why["verdict"] == "released" and why["reasons"]
    code, _, said = omega("admin", "consensus", "no-such-pattern")
    assert code == 3 and "no released pattern and no live cluster" in said, said


def _viewer_token(server: ServerProcess) -> str:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        return Device.register(client).access_token


def test_viewers_list_show_and_revoke(env: ServerProcess) -> None:
    with httpx.Client(base_url=env.base_url, timeout=30) as client:
        device = Device.register(client)
        listed = answer("admin", "viewers", "list", "--limit", "1000")["viewers"]
        assert isinstance(listed, list)
        assert device.viewer_id in [v["viewer_id"] for v in listed]
        shown = answer("admin", "viewers", "show", device.viewer_id)
        assert shown["revoked_at"] is None and shown["device_model"] == "test-tv"
        code, _, said = omega("admin", "viewers", "show", "v_nobody")
        assert code == 3 and "'v_nobody' is not registered" in said, said
        code, _, said = omega("admin", "viewers", "revoke", "v_nobody")
        assert code == 3 and "not registered" in said, said

        revoked = answer("admin", "viewers", "revoke", device.viewer_id)
        assert revoked["revoked_at"] is not None
        assert answer("admin", "viewers", "revoke", device.viewer_id) == revoked  # once
        # Its pushes are refused, and it gets no new tokens.
        refused = device.sync_raw(device.push([preference(6)], codebook_id="any"))
        assert refused.status_code == 403, refused.text
        assert refused.json()["type"].endswith("/viewer-revoked")
        refresh = client.post("/api/omega/token", json={"refresh_token": device.refresh_token})
        assert refresh.status_code == 403 and refresh.json()["type"].endswith("/viewer-revoked")
    page = answer("admin", "viewers", "list", "--limit", "1")
    assert len(page["viewers"]) == 1 and page["next_after"]  # type: ignore[arg-type]


def test_keys_rotate(env: ServerProcess) -> None:
    before = httpx.get(env.base_url + "/api/omega/release-keys").json()["signing_kid"]
    tokens = answer("admin", "keys", "rotate")
    assert tokens["signing_kid"] in tokens["kids"]  # type: ignore[operator]
    release = answer("admin", "keys", "rotate", "--release")
    assert release["signing_kid"] != before


def test_a_revoked_attested_tv_registering_again_gets_no_tokens(env: ServerProcess) -> None:
    identity = MANUFACTURER.device("SN-revoked", model="test-tv")

    def register() -> httpx.Response:
        body = codec.encode_json(identity.attest(Registration(device_model="test-tv")))
        return httpx.post(
            env.base_url + "/api/omega/viewers",
            content=body,
            headers={"Content-Type": "application/json"},
        )

    first = register()
    assert first.status_code == 201, first.text
    viewer_id = first.json()["viewer_id"]
    assert register().status_code == 200  # the same TV again: its viewer id back
    answer("admin", "viewers", "revoke", viewer_id)
    refused = register()
    assert refused.status_code == 403 and refused.json()["type"].endswith("/viewer-revoked")
