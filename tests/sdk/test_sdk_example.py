"""sdk/examples/tv.c, built with gcc against ``omega sdk build``'s output, run against a
real constellation on loopback (attestation required, the TV certified by a maker it
trusts, a codebook published): its output, what the constellation saw, and what it left
in the brain; then the same run under valgrind's memcheck."""

from __future__ import annotations

import ctypes
import json
import re
import shutil
from collections.abc import Iterator
from ctypes import byref, c_void_p
from pathlib import Path

import pytest
from _sdk_world import CATALOG, REPO, Constellation, certify, run, start_constellation

from omega.brain import Brain
from omega.sdk import Status


@pytest.fixture
def constellation(tmp_path: Path) -> Iterator[Constellation]:
    server = start_constellation(tmp_path / "server")
    try:
        yield server
    finally:
        server.stop()


def _command(tv: Path, tmp_path: Path, server: Constellation) -> list[str]:
    certificate, key = certify(tmp_path / "tv-0042")
    brain = tmp_path / "brain"
    return [str(tv), str(brain), str(CATALOG), server.base_url, str(certificate), str(key)]


def _check_output(stdout: str) -> int:
    """The example's lines; the number of patterns it pushed."""
    assert stdout.startswith("omega 0.1.0\nimported 12 titles\ntracked 7 events\n"), stdout
    assert "an unknown title: OMEGA_E_INPUT (omega_track_view: unknown item" in stdout
    recs = re.findall(r"^  \d\. (.+) \((\d\.\d{3})\) (because .+)$", stdout, re.M)
    assert len(recs) == 5, stdout
    assert [float(score) for _, score, _ in recs] == sorted(
        (float(score) for _, score, _ in recs), reverse=True
    )
    watched = {"Heat", "The Godfather", "Goodfellas", "Toy Story"}
    assert not watched & {title for title, _, _ in recs}
    synced = re.search(
        r"^synced: pushed (\d+), accepted (\d+), pulled (\d+), release", stdout, re.M
    )
    assert synced is not None, stdout
    assert "periodic sync: started and stopped\n" in stdout
    assert re.search(r'^stats \(\d+ bytes\): \{"directory": ', stdout, re.M)
    assert stdout.endswith("closed\n")
    pushed, accepted = int(synced[1]), int(synced[2])
    assert pushed == accepted
    return pushed


def test_the_example_runs_against_a_live_constellation(
    tv: Path, tmp_path: Path, constellation: Constellation
) -> None:
    done = run(_command(tv, tmp_path, constellation))
    assert done.returncode == 0, done.stdout + done.stderr
    pushed = _check_output(done.stdout)
    # The TV registered (attested: the server refuses any other) and its patterns arrived.
    stats = constellation.admin("GET", "/api/omega/stats").json()
    assert stats["viewers"] == 1
    assert pushed >= 1 and stats["pending_contributions"] == pushed
    # The brain adopted the constellation's codebook (8 cells) and kept every event.
    with Brain.open(tmp_path / "brain", create=False) as brain:
        figures = brain.stats()
    assert figures["codebook_cells"] == 8
    assert figures["episodes"] == 8 and figures["outbox"] == 0


def test_without_attestation_the_constellation_refuses_the_tv(
    tv: Path, tmp_path: Path, constellation: Constellation
) -> None:
    done = run([str(tv), str(tmp_path / "brain"), str(CATALOG), constellation.base_url])
    assert done.returncode == 1
    assert "omega_sync_now(brain, &sync) failed: OMEGA_E_AUTH: omega_sync_now: " in done.stderr
    assert "registers only attested devices" in done.stderr
    assert constellation.admin("GET", "/api/omega/stats").json()["viewers"] == 0


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_example_under_valgrind(tv: Path, tmp_path: Path, constellation: Constellation) -> None:
    """memcheck over the whole run, the interpreter's known reports suppressed
    (sdk/valgrind.supp says which and why); any other error fails the run."""
    valgrind = shutil.which("valgrind")
    assert valgrind is not None, "install valgrind (the Debian package) to run this test"
    command = [
        valgrind,
        "--error-exitcode=1",
        f"--suppressions={REPO / 'sdk' / 'valgrind.supp'}",
        f"--log-file={tmp_path / 'valgrind.log'}",
        *_command(tv, tmp_path, constellation),
    ]
    done = run(command, timeout=1700, PYTHONMALLOC="malloc")
    log = (tmp_path / "valgrind.log").read_text()
    assert done.returncode == 0, done.stderr + log[-6000:]
    _check_output(done.stdout)
    assert re.search(r"ERROR SUMMARY: 0 errors from 0 contexts \(suppressed: \d+ from \d+\)", log)


def test_the_periodic_sync_stopped_by_a_refusal_says_so_at_stop(
    lib: ctypes.CDLL, tmp_path: Path, constellation: Constellation
) -> None:
    """No certificate: the constellation refuses the TV, which no wait can heal, so the
    periodic sync stops by itself; the stats show it and omega_stop_sync returns it."""
    config, brain = c_void_p(), c_void_p()
    assert lib.omega_config_new(byref(config)) == Status.OK
    assert lib.omega_config_set_storage_path(config, str(tmp_path / "brain").encode()) == 0
    assert lib.omega_config_set_constellation_url(config, constellation.base_url.encode()) == 0
    assert lib.omega_brain_open(config, byref(brain)) == Status.OK
    try:
        assert lib.omega_start_sync(brain) == Status.OK
        assert lib.omega_start_sync(brain) == Status.CONFIG  # once
        assert lib.omega_sync_now(brain, None) == Status.AUTH
        assert "attestation-required" in lib.omega_last_error().decode()
        json_text = ctypes.create_string_buffer(1 << 16)
        assert lib.omega_stats(brain, json_text, 1 << 16, None) == Status.OK
        sync = json.loads(json_text.value)["sync"]
        assert sync["state"] in ("stopping", "failed")  # on its way out, or out
        assert "AuthError" in sync["last_error"]
        assert lib.omega_stop_sync(brain) == Status.AUTH
        assert lib.omega_stop_sync(brain) == Status.OK  # stopped already: nothing to say
    finally:
        assert lib.omega_brain_close(brain) == Status.OK
        lib.omega_config_free(config)
