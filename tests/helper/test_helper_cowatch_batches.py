"""The helper's co-watch shuffle hands the leader a batch only when its reports come from
enough distinct TVs: one TV's epoch (128 reports by default) alone exceeds ``min_batch``,
and a batch of one TV's reports would name its sender to a leader that saw who asked it
for OPRF points just before."""

from __future__ import annotations

import secrets
from pathlib import Path

import msgspec
import pytest

from omega.clock import ManualClock
from omega.errors import ConfigError
from omega.helper import CowatchConfig, CowatchDesk, HelperConfig, HelperService
from omega.protocol.attestation import Manufacturer
from omega.protocol.cowatch import TAG_BYTES, SealedReport
from omega.protocol.cowatch_wire import ReportRequest, prove


def _reports(n: int) -> list[SealedReport]:
    """Shaped like sealed reports (the helper cannot open one; it checks the shape)."""
    return [SealedReport(tag=secrets.token_bytes(TAG_BYTES), sealed=b"s" * 100) for _ in range(n)]


def _desk(tmp_path: Path, clock: ManualClock, maker: Manufacturer) -> CowatchDesk:
    service = HelperService.open(tmp_path, HelperConfig())
    keys = {("acme", "k1"): maker.key.public_key()}
    config = CowatchConfig(min_batch=100, min_devices=3, manufacturer_keys=keys)
    return CowatchDesk(tmp_path, service.secret, config, clock=clock)


def test_a_batch_waits_for_reports_from_enough_tvs(tmp_path: Path) -> None:
    clock, maker = ManualClock(), Manufacturer.generate("acme", "k1")
    desk = _desk(tmp_path, clock, maker)

    def submit(tv: int, n: int) -> None:
        request = ReportRequest(reports=_reports(n))
        device = maker.device(f"SN-{tv}", clock=clock)
        signed = msgspec.structs.replace(request, proof=prove(device, "reports", request))
        assert desk.submit(signed).errors == [""] * n

    submit(1, 128)  # one TV's whole epoch: more than min_batch, from one TV
    assert desk.take_batch().batch_id == ""
    submit(2, 1)
    assert desk.take_batch().batch_id == ""
    submit(3, 1)
    batch = desk.take_batch()
    assert len(batch.reports) == 130
    assert desk.ack(batch.batch_id) == 130
    submit(4, 128)  # the senders count again from the last batch
    assert desk.take_batch().batch_id == ""


def test_min_devices_is_at_least_one() -> None:
    with pytest.raises(ConfigError, match="min_devices must be ≥ 1"):
        CowatchConfig(min_devices=0)
