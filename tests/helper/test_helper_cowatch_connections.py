"""The co-watch desk keeps one SQLite connection per thread that calls it; a helper that
stops closes them all (nothing of its store is left open in the process), and the desk
stays usable: the next call opens a new one."""

from __future__ import annotations

import os
import secrets
import sqlite3
from pathlib import Path

import httpx
import msgspec
import pytest

from omega.clock import ManualClock
from omega.helper import CowatchConfig, CowatchDesk, HelperConfig, HelperService
from omega.helper.thread import HelperThread
from omega.protocol.aggregation import MSGPACK_MEDIA_TYPE
from omega.protocol.attestation import Manufacturer
from omega.protocol.cowatch import TAG_BYTES, SealedReport
from omega.protocol.cowatch_wire import ReportRequest, prove

STORE = "helper-cowatch.sqlite3"


def _open_files(directory: Path) -> list[str]:
    """The files under ``directory`` this process holds open (Linux: /proc/self/fd)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the directory's own descriptor, closed as it was listed
            continue
        if target.startswith(str(directory)):
            held.append(target)
    return held


def _signed(maker: Manufacturer, clock: ManualClock, tv: int) -> ReportRequest:
    report = SealedReport(tag=secrets.token_bytes(TAG_BYTES), sealed=b"s" * 100)
    request = ReportRequest(reports=[report])
    device = maker.device(f"SN-{tv}", clock=clock)
    return msgspec.structs.replace(request, proof=prove(device, "reports", request))


def test_a_stopped_helper_leaves_no_connection_to_the_desk_open(tmp_path: Path) -> None:
    clock, maker = ManualClock(), Manufacturer.generate("acme", "k1")
    service = HelperService.open(tmp_path, HelperConfig())
    keys = {("acme", "k1"): maker.key.public_key()}
    desk = CowatchDesk(tmp_path, service.secret, CowatchConfig(manufacturer_keys=keys), clock=clock)
    with HelperThread(service, cowatch=desk) as helper:
        for tv in range(4):
            answer = httpx.post(
                f"{helper.url}/helper/v1/cowatch/reports",
                content=msgspec.msgpack.encode(_signed(maker, clock, tv)),
                headers={"content-type": MSGPACK_MEDIA_TYPE},
                timeout=30.0,
            )
            assert answer.status_code == 200, answer.text
        assert desk.waiting() == 4  # this thread's connection, beside the helper's
        assert any(STORE in f for f in _open_files(tmp_path))
    assert [f for f in _open_files(tmp_path) if STORE in f] == []
    # Still usable after: a new connection, the reports all there.
    assert desk.submit(_signed(maker, clock, 9)).errors == [""]
    assert desk.waiting() == 5
    desk.close()
    assert [f for f in _open_files(tmp_path) if STORE in f] == []


def test_a_full_store_fails_with_its_own_error_and_the_desk_goes_on(tmp_path: Path) -> None:
    """SQLite rolls a transaction back itself when the disk fills; the desk reports that
    error (it used to report its own failed ROLLBACK instead) and serves the next call."""
    clock, maker = ManualClock(), Manufacturer.generate("acme", "k1")
    service = HelperService.open(tmp_path, HelperConfig())
    keys = {("acme", "k1"): maker.key.public_key()}
    config = CowatchConfig(manufacturer_keys=keys, per_epoch=1000)
    desk = CowatchDesk(tmp_path, service.secret, config, clock=clock)
    with desk._db() as c:  # this thread's connection: a store that cannot grow
        pages = c.execute("PRAGMA page_count").fetchone()[0]
        c.execute(f"PRAGMA max_page_count = {pages + 1}")
    reports = [
        SealedReport(tag=secrets.token_bytes(TAG_BYTES), sealed=b"s" * 190) for _ in range(200)
    ]
    device = maker.device("SN-1", clock=clock)
    request = ReportRequest(reports=reports)
    request = msgspec.structs.replace(request, proof=prove(device, "reports", request))
    with pytest.raises(sqlite3.OperationalError, match="full"):
        desk.submit(request)
    assert desk.waiting() == 0  # nothing of the refused call
    with desk._db() as c:
        c.execute("PRAGMA max_page_count = 1073741823")
    assert desk.submit(_signed(maker, clock, 2)).errors == [""]
    assert desk.waiting() == 1
    desk.close()
