"""The fleet restart, small: device runtimes (real brains, real HTTP on loopback) ride out
a SIGKILLed `omega serve` restarted on the same port, with no thundering herd and the
server's storage holding every shared pattern exactly once.

The full size (1,000 devices, a 30 s outage, 60 s intervals) is ``omega bench
fleet-restart``; here time is scaled down (2 s intervals, 2 s outage) to keep CI short.
"""

from __future__ import annotations

from omega.bench import run_fleet_restart


def test_a_fleet_rides_out_a_server_sigkill_and_restart() -> None:
    result = run_fleet_restart(
        devices=80, interval=2.0, outage=2.0, window=2.0, base=0.1, cap=2.0, tick=1.0
    )
    assert result["devices_hit"] > 0 and result["failed_attempts"] > 0  # the outage was felt
    assert result["devices_recovered"] == result["devices_hit"]  # all came back on their own
    assert result["failed_attempts_after_up"] == 0
    assert result["first_window_ratio"] < 3  # no thundering herd after the restart
    assert result["patterns_shared"] > 0
    assert result["patterns_lost"] == 0 and result["patterns_duplicated"] == 0
    assert result["outbox_left"] == 0 and result["inflight_left"] == 0
