"""``omega bench wasm`` and ``omega sdk wasm`` as a user runs them (no timing is asserted:
the figures are the machine's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from _wasm_world import CACHE


def test_bench_wasm_times_each_operation_on_both_sides_and_sizes_the_bundle() -> None:
    command = [sys.executable, "-m", "omega.cli", "bench", "wasm", "--json", "--cache", str(CACHE)]
    options = ["--messages", "4", "--repeats", "2", "--loads", "1"]
    done = subprocess.run([*command, *options], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["load_s"]["median"] > 0 and len(figures["load_s"]["each"]) == 1
    assert figures["import_s"] > 0
    assert set(figures["operations"]) == {"encode_push", "decode_pull", "verify_seal"}
    for side in figures["operations"].values():
        assert side["pyodide_us"] > 0 and side["cpython_us"] > 0 and side["ratio"] > 0
    bundle = figures["bundle"]
    assert bundle["total_bytes"] == sum(bundle["files"].values())
    assert 0 < bundle["wasm_gzip_bytes"] < bundle["total_gzip_bytes"] < bundle["total_bytes"]


def test_sdk_wasm_names_an_out_it_cannot_make(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "bundle"
    command = [sys.executable, "-m", "omega.cli", "sdk", "wasm", "--out", str(out)]
    done = subprocess.run(
        [*command, "--cache", str(CACHE)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    said = " ".join(done.stderr.split())  # Rich wraps long lines
    assert f"--out: cannot make {out} (Not a directory)" in said
