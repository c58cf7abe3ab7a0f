"""The soak, short: a fleet through one of each fault, nothing lost or stored twice, every
fault felt — and an audit that catches a row lost or stored twice when there is one.

``omega bench soak --minutes 10`` is the full size (1,000 cheap devices at 70 % of the
held rate measured first, 16 brains, minutes-long faults); here 21 s, 60 devices at 42
syncs/s (a given held rate of 60), 3 brains, rounds every 2 s and a 3 s helper outage
(~30 s on SQLite; the PostgreSQL run, marked slow, ~40 s more).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from omega.bench import run_soak
from omega.bench._soak_audit import audit
from omega.errors import ConfigError, InputError

#: One fault of each kind in 21 s: rounds every 2 s, so a 3 s helper outage spans one.
SHORT: dict[str, Any] = {
    "minutes": 0.35,
    "federation_interval": 2.0,
    "server_down": 1.0,
    "helper_down": 3.0,
    "brain_interval": 1.0,
    "watch_every": 2.0,
    "share_fraction": 0.2,
    "drain_timeout": 20,
}


@pytest.fixture(scope="module")
def soaked(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("soak")
    result = run_soak(**SHORT, held_rate=60, devices=60, brains=3, work_dir=root)
    return result, root


def test_a_short_soak_loses_and_duplicates_nothing(soaked: tuple[dict[str, Any], Path]) -> None:
    result, _ = soaked
    assert result["ok"], result
    assert result["patterns_lost"] == 0 and result["patterns_duplicated"] == 0
    cheap, brains = result["audit"]["cheap_devices"], result["audit"]["brains"]
    assert cheap["versions_acknowledged"] > 1000 and cheap["latest_checked"] > 100
    assert brains["versions_acknowledged"] > 0 and brains["patterns_shared"] > 0
    assert result["syncs"]["ok"] > 0 and result["brains"]["syncs_ok"] > 0
    shares = result["two_server_reports"]
    assert shares["sent"] > 0 and shares["lost"] == 0
    assert shares["counted"] + shares["queued"] == shares["sent"]


def test_every_fault_happened_and_was_felt(soaked: tuple[dict[str, Any], Path]) -> None:
    result, _ = soaked
    faults = result["faults"]
    assert (faults["server_restarts"], faults["reset_bursts"], faults["helper_outages"]) == (
        1,
        1,
        1,
    )
    events = {e["kind"]: e for e in faults["events"]}
    restart = events["server-restart"]
    assert restart["syncs_failed_in_window"] > 0  # the devices met a dead server...
    assert result["rss_mb"]["server"]["processes"] == 2  # ...and a new one
    resets = events["resets"]
    assert resets["cuts_fired"] == 4 and resets["resets"] >= 4
    outage = events["helper-outage"]
    assert outage["shares_queued_at_return"] > 0  # reports waited for the helper...
    assert result["rss_mb"]["helper"]["processes"] == 2
    assert result["two_server_reports"]["counted_after_helper_returned"] > 0  # ...and counted


def test_the_audit_catches_a_lost_and_a_duplicated_row(
    soaked: tuple[dict[str, Any], Path],
) -> None:
    """Corrupt the stopped server's storage as a bug would, and audit again."""
    _, root = soaked
    main = root / "server" / "constellation.db"
    with sqlite3.connect(main) as conn:  # a cheap device's pattern version never queued
        conn.execute(
            "DELETE FROM soak_log WHERE n = (SELECT MIN(n) FROM soak_log WHERE n > ?)",
            (_since(root),),
        )
    assert audit(root)["patterns_lost"] == 1
    with sqlite3.connect(main) as conn:  # a brain's pattern version queued twice
        conn.execute(
            "INSERT INTO soak_log (batch_id, pattern_id) SELECT batch_id, pattern_id FROM"
            " soak_log WHERE batch_id NOT LIKE 'soak-%' ORDER BY n DESC LIMIT 1"
        )
    again = audit(root)
    assert again["patterns_lost"] == 1 and again["patterns_duplicated"] == 1
    with sqlite3.connect(root / "server" / "constellation.live.db") as conn:  # newest gone
        conn.execute("DELETE FROM live WHERE pattern_id = (SELECT MIN(pattern_id) FROM live)")
    assert audit(root)["patterns_lost"] >= 2


def _since(root: Path) -> int:
    return int(json.loads((root / "soak.json").read_text())["log_since"])


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"minutes": 0}, InputError),
        ({"minutes": 0.05}, InputError),  # the faults do not fit in 3 s
        ({"held_rate": -5}, InputError),
        ({"db_url": "mysql://x"}, ConfigError),
    ],
)
def test_bad_settings_are_refused_before_anything_starts(
    options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        run_soak(**options)


@pytest.mark.postgres
@pytest.mark.slow
def test_a_short_soak_on_postgresql(postgres_db_url: str, tmp_path: Path) -> None:
    """The same on PostgreSQL (``--db``): the audit log is a PL/pgSQL trigger there."""
    result = run_soak(
        **SHORT, held_rate=40, devices=40, brains=2, db_url=postgres_db_url, work_dir=tmp_path
    )
    assert result["ok"], result
    assert result["settings"]["storage"] == "postgresql"
    assert result["patterns_lost"] == 0 and result["patterns_duplicated"] == 0
    assert result["audit"]["cheap_devices"]["versions_acknowledged"] > 500
    assert result["rss_mb"]["server"]["processes"] == 2  # restarted on the same database
    assert result["two_server_reports"]["sent"] > 0
