"""``omega bench sdk``: both paths run on one brain and every figure is reported (no
timing is asserted: the figures are the machine's)."""

from __future__ import annotations

import json
import sys

from _sdk_world import run


def test_bench_sdk_reports_both_paths_first_calls_and_memory() -> None:
    command = [sys.executable, "-m", "omega.cli", "bench", "sdk", "--json"]
    done = run([*command, "--titles", "300", "--calls", "30", "--warmup", "5", "--rounds", "1"])
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    for path in ("c", "python"):
        assert 0 < figures[f"{path}_recommend_p50_ms"] <= figures[f"{path}_recommend_p99_ms"]
    assert figures["target_p99_ms"] == round(1.2 * figures["python_recommend_p99_ms"] + 0.2, 4)
    assert isinstance(figures["within_target"], bool)
    for key in ("first_call_ms", "brain_open_ms", "model_load_and_first_embed_ms"):
        assert figures[key] > 0
    # The model adds to the C host's memory once it loads.
    assert 0 < figures["c_host_rss_before_model_mb"] < figures["c_host_rss_mb"]
    assert figures["python_host_rss_mb"] > 0 and figures["library_bytes"] > 10_000
    assert figures["c_call_p50_us"] > 0
    assert figures["calls"] == 30 and figures["titles"] == 300
