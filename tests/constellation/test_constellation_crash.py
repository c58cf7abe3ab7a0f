"""The server dies after committing a push and before answering: the retry applies once."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from _constellation_harness import Device, preference, publish_codebook, start_server, stats


def test_a_push_committed_before_a_crash_applies_exactly_once_on_retry(tmp_path: Path) -> None:
    data_dir = tmp_path / "constellation"
    crashing = start_server(data_dir, OMEGA_FAILPOINTS='["crash-after-ingest"]')
    try:
        codebook_id = publish_codebook(crashing)
        with httpx.Client(base_url=crashing.base_url, timeout=30) as client:
            device = Device.register(client)
            push = device.push([preference(1), preference(2)], codebook_id=codebook_id)
            with pytest.raises(httpx.TransportError):
                device.sync_raw(push)  # the server exits without answering
        assert crashing.process.wait(timeout=30) == 70
    finally:
        crashing.stop()

    restarted = start_server(data_dir)  # same database, same keys: the device's token works
    try:
        assert stats(restarted)["pending_contributions"] == 2  # the commit survived the crash
        with httpx.Client(base_url=restarted.base_url, timeout=30) as client:
            device.client = client
            ack = device.sync(push).ack
            again = device.sync(push).ack
        assert ack is not None
        assert sorted(ack.accepted) == ["pref-1", "pref-2"]
        assert again == ack
        assert stats(restarted)["pending_contributions"] == 2  # not applied a second time
    finally:
        restarted.stop()
