"""omega.h: clean C99 and C++, the one list of functions, the CLI's exit codes."""

from __future__ import annotations

import ctypes
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from _sdk_world import REPO, run

from omega.cli.main import ExitCode
from omega.sdk import HEADER, Status, api_functions

#: Uses every type and function of the header, so that each is compiled, not skipped.
USE_EVERYTHING = r"""
#include "omega.h"
int use(void);
int use(void)
{
    omega_config *config = 0;
    omega_brain *brain = 0;
    omega_item item = {"m1", "Heat", "Crime", 1995, 170, 0};
    omega_context context = {OMEGA_TIME_EVENING, OMEGA_DAY_WEEKEND};
    const char *exclude[] = {"m2"};
    omega_filters filters = {"Crime", 120, exclude, 1};
    omega_recommendation items[2];
    char text[256];
    omega_results results = {items, 2, text, sizeof text, 0, 0};
    omega_sync_result sync;
    size_t n = 0;
    char json[16];
    int s = omega_config_new(&config) + omega_config_set_storage_path(config, "/tmp/x")
        + omega_config_set_constellation_url(config, "http://127.0.0.1:8000")
        + omega_config_set_sync_interval(config, 60.0) + omega_config_set_min_quality(config, 0.7)
        + omega_config_set_max_patterns(config, 100)
        + omega_config_set_manufacturer_certificate(config, "device.cert", "device.key")
        + omega_brain_open(config, &brain) + omega_config_free(config)
        + omega_import_catalog_file(brain, "catalog.csv", &n)
        + omega_import_catalog(brain, &item, 1, &n)
        + omega_track_view(brain, "m1", 0.5, OMEGA_UNKNOWN, 0) + omega_track_skip(brain, "m1", 5.0)
        + omega_track_rating(brain, "m1", 4.5) + omega_track_search(brain, "heat", exclude, 1, 0)
        + omega_track_browse(brain, exclude, 1)
        + omega_recommend(brain, &context, 2, &filters, &results) + omega_sync_now(brain, &sync)
        + omega_start_sync(brain) + omega_stop_sync(brain)
        + omega_stats(brain, json, sizeof json, &n)
        + omega_brain_close(brain);
    return s + (omega_last_error()[0] == 0) + (omega_status_name(OMEGA_E_BUFFER)[0] == 'O')
        + (omega_version()[0] == '0');
}
"""


@pytest.mark.parametrize(
    "compiler",
    [
        ["gcc", "-x", "c", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"],
        ["g++", "-x", "c++", "-Wall", "-Wextra", "-Werror"],
    ],
    ids=["c99", "c++"],
)
def test_the_header_compiles_cleanly_as_c99_and_cxx(compiler: list[str], tmp_path: Path) -> None:
    source = tmp_path / "use.txt"
    source.write_text(USE_EVERYTHING)
    done = subprocess.run(
        [*compiler, f"-I{HEADER.parent}", "-fsyntax-only", str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_repository_header_is_the_packages() -> None:
    assert (REPO / "sdk" / "include" / "omega.h").read_bytes() == HEADER.read_bytes()


def test_the_library_exports_exactly_the_headers_functions(sdk: Path) -> None:
    done = subprocess.run(
        ["nm", "-D", "--defined-only", str(sdk / "lib" / "libomega.so")],
        capture_output=True,
        text=True,
        check=True,
    )
    exported = {line.split()[-1] for line in done.stdout.splitlines()}
    declared = {f.name for f in api_functions()}
    assert len(declared) == 25
    assert exported - {"PyInit__omega_cffi"} == declared
    assert (sdk / "include" / "omega.h").read_bytes() == HEADER.read_bytes()


def test_status_codes_are_the_clis_exit_codes(lib: ctypes.CDLL) -> None:
    shared = {"OK": "OK", "ERROR": "ERROR", "CONFIG": "USAGE", "INPUT": "INPUT"}
    shared |= {"STORAGE": "STORE", "MODEL": "MODEL", "NETWORK": "NETWORK", "AUTH": "AUTH"}
    shared["PROTOCOL"] = "PROTOCOL"
    for status, exit_code in shared.items():
        assert Status[status] == ExitCode[exit_code]
    header = HEADER.read_text()
    for status in Status:
        name = "OMEGA_OK" if status is Status.OK else f"OMEGA_E_{status.name}"
        assert f"{name} = {int(status)}" in header
        assert lib.omega_status_name(int(status)) == name.encode()
    assert lib.omega_status_name(42) == b"OMEGA_E_UNKNOWN"
    assert lib.omega_version().decode() == version("exogenesis-omega")


def test_the_docs_describe_every_function_and_code() -> None:
    docs = (REPO / "docs" / "sdk.md").read_text()
    for function in api_functions():
        assert f"`{function.name}(" in docs or f"`const char *{function.name}(" in docs, function
    for status in Status:
        name = "OMEGA_OK" if status is Status.OK else f"OMEGA_E_{status.name}"
        assert f"| `{name}` | {int(status)} |" in docs


def test_sdk_build_names_a_bad_out_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = run([sys.executable, "-m", "omega.cli", "sdk", "build", "--out", str(blocker)])
    assert done.returncode == 2
    said = " ".join(done.stderr.split())  # Rich wraps long lines
    assert f"--out: cannot make {blocker / 'lib'} (Not a directory)" in said
