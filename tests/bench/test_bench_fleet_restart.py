"""The fleet restart, small: device runtimes (real brains, real HTTP on loopback) ride out
a SIGKILLed `omega serve` restarted on the same port, and the server's storage holds every
shared pattern exactly once.

The full size (1,000 devices, a 30 s outage, 60 s intervals) is ``omega bench
fleet-restart``; here time is scaled down (2 s intervals, 2 s outage) to keep CI short.
The bench reports the reconnect against the steady rate (the thundering-herd figure),
but over seconds of wall clock on shared cores that figure is the machine's as much as
the fleet's, so this test does not bound it: what keeps a fleet from stampeding — full
jitter over each device's backoff window — is tested on the schedule's own draws
(``tests/sync/test_sync_decisions.py``, mean, spread and a KS test, seeded).
"""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from omega.bench import run_fleet_restart
from omega.bench.fleet_restart import _Log, _Plan, _rates
from omega.cli.bench import app as bench_app
from omega.errors import InputError


def test_a_fleet_rides_out_a_server_sigkill_and_restart() -> None:
    result = run_fleet_restart(
        devices=80, interval=2.0, outage=2.0, window=2.0, base=0.1, cap=2.0, tick=1.0
    )
    assert result["devices_hit"] > 0 and result["failed_attempts"] > 0  # the outage was felt
    assert result["devices_recovered"] == result["devices_hit"]  # all came back on their own
    assert result["patterns_shared"] > 0
    assert result["patterns_lost"] == 0 and result["patterns_duplicated"] == 0
    assert result["outbox_left"] == 0 and result["inflight_left"] == 0
    assert {"steady_per_s", "first_window_ratio", "peak_1s_ratio"} <= set(result)  # reported


def test_a_steady_window_with_no_attempt_reports_null_ratios_with_a_note() -> None:
    """A fleet too small or too slow for its steady window (one device, 0.3 s intervals):
    no steady rate, so no ratio to it — null and said, not a ZeroDivisionError."""
    plan = _Plan(
        devices=1, interval=0.3, steady=0.3, outage=1, window=1, after=1, base=1, cap=900,
        tick=5, seed=0,
    )  # fmt: skip
    marks = {"started": 0.0, "steady_from": 0.3, "steady_to": 0.6, "killed": 0.6}
    marks |= {"restarting": 1.6, "healthy": 1.8, "observed": 2.6}
    log = _Log([(0.1, 0, True), (0.9, 0, False), (1.9, 0, True)])
    rates = _rates(log, marks, plan)
    assert rates["steady_per_s"] == 0
    assert rates["first_window_ratio"] is None and rates["peak_1s_ratio"] is None
    assert "no sync attempt fell in the 0.3 s steady window" in rates["ratio_note"]
    assert rates["first_window_per_s"] == 1.0 and rates["devices_recovered"] == 1


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--backoff-cap", "0.5"], "--backoff-cap"),
        (["--interval", "0"], "--interval"),
        (["--window", "5", "--after", "2"], "--after"),
    ],
)
def test_bad_flags_are_refused_in_one_sentence_before_anything_opens(
    flags: list[str], named: str
) -> None:
    app = typer.Typer()
    app.add_typer(bench_app, name="bench")
    result = CliRunner().invoke(app, ["bench", "fleet-restart", "--devices", "1", *flags])
    assert isinstance(result.exception, InputError), result.output
    assert named in str(result.exception)
