"""``omega bench shares``: reports made, queued and counted with a real helper."""

from __future__ import annotations

import pytest

from omega.bench.shares import run_shares_bench
from omega.errors import InputError


def test_the_shares_bench_counts_what_it_made() -> None:
    result = run_shares_bench(reports=40, catalog=700, seed=3)
    assert result["counted"] == 40 and result["counts_exact"] is True
    assert 300 < result["report_bytes_median"] < 450
    assert result["noise_ms_exact_p50"] > 0 and result["noise_ms_seeded_p50"] > 0
    with pytest.raises(InputError, match="--reports"):
        run_shares_bench(reports=0)
