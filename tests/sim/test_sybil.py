"""The Sybil drill: identities an attacker gets with and without a manufacturer's key, and
what revoking a leaked key takes away."""

from __future__ import annotations

import asyncio
from pathlib import Path

from omega.sim.sybil import sybil_drill


def test_only_a_leaked_key_mints_identities_and_revocation_takes_them_back(
    tmp_path: Path,
) -> None:
    result = asyncio.run(sybil_drill(tmp_path, attempts=12, manufacturer_limit=5))
    assert result["identities"] == {
        "unattested": 0,
        "forged": 0,
        "copied_certificate": 0,
        "one_device_key": 1,  # one TV is one viewer, however often it registers
        "leaked_manufacturer_key": 5,  # the per-manufacturer limit for the window
    }
    assert result["refused_by_manufacturer_limit"] == 7
    assert result["released_sybil_patterns"] == 1  # five "viewers" agreeing: released
    # The leaked key certifies registered TVs' serials under the attacker's device keys.
    assert result["takeover"] == {"attempts": 4, "viewers_taken_over": 0, "refused": 4}
    assert result["after_revocation"] == {
        "identities": 0,
        "token_refreshes": 0,
        "pushes_accepted": 0,
        "released_sybil_patterns": 0,
    }
