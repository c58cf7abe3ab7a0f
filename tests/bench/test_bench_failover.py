"""The failover bench, small: two replicas on one PostgreSQL, device runtimes (real
brains, real HTTP on loopback) that know both, one replica SIGKILLed under load; the
fleet moves to the other and the shared store holds every shared pattern exactly once.

The full size is ``omega bench failover`` (200 devices, 10 s intervals); here 40
devices sync every 2 s to keep CI short."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from omega.bench import run_failover
from omega.cli.bench import app as bench_app
from omega.errors import InputError

pytestmark = pytest.mark.postgres


def test_a_fleet_moves_to_the_other_replica_and_loses_nothing() -> None:
    result = run_failover(devices=40, interval=2.0, base=0.2, tick=1.0)
    assert result["failovers"] >= 20  # every device that was on the killed replica moved
    assert result["attempts_after_kill"] > 0
    assert result["devices_recovered"] == result["devices_failed"]
    assert result["patterns_shared"] > 0
    assert result["patterns_lost"] == 0 and result["patterns_duplicated"] == 0
    assert result["outbox_left"] == 0 and result["inflight_left"] == 0
    assert {"failure_window_ms", "recovery_max_s", "failed_attempts"} <= set(result)


@pytest.mark.parametrize(
    ("flags", "named"), [(["--devices", "1"], "--devices"), (["--interval", "0"], "--interval")]
)
def test_bad_flags_are_refused_in_one_sentence_before_anything_opens(
    flags: list[str], named: str
) -> None:
    result = CliRunner().invoke(bench_app, ["failover", *flags])
    assert isinstance(result.exception, InputError), result.output
    assert named in str(result.exception)
