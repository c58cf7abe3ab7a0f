"""The sync benchmark measures real encodes and decodes of realistic deltas."""

from __future__ import annotations

import numpy as np
import pytest

from omega.bench.sync import measure_sync, run_sync_bench, synthetic_pulls, synthetic_pushes
from omega.errors import InputError
from omega.protocol import decode, encode


def test_synthetic_deltas_are_valid_and_sized_like_the_design() -> None:
    rng = np.random.default_rng(1)
    pushes = synthetic_pushes(20, rng=rng)
    pulls = synthetic_pulls(20, rng=rng)
    for push in pushes:
        assert decode(encode(push)) == push
    for pull in pulls:
        assert decode(encode(pull)) == pull
    assert all(10 <= len(p.added) + len(p.updated) <= 30 for p in pushes)
    assert all(40 <= len(p.patterns) <= 80 for p in pulls)
    assert all(len(encode(p)) <= 5120 for p in pulls)


def test_same_seed_same_sizes() -> None:
    first = run_sync_bench(pushes=15, seed=3, repeats=1)
    second = run_sync_bench(pushes=15, seed=3, repeats=1)
    for key in ("push_bytes_median", "push_bytes_p95", "pull_bytes_median", "pull_bytes_p95"):
        assert first[key] == second[key] > 0
    assert first["pull_bytes_median"] > first["push_bytes_median"]
    assert first["encode_us_median"] > 0
    assert first["decode_us_median"] > 0
    assert set(first["kinds"]) == {"push", "pull", "sync_request", "sync_response"}
    assert first["seal"]["seal_us_median"] > 0 and first["seal"]["verify_us_median"] > 0
    assert 64 < first["seal"]["seal_bytes"] == second["seal"]["seal_bytes"] < 200


def test_measure_sync_takes_any_messages() -> None:
    rng = np.random.default_rng(2)
    pushes, pulls = synthetic_pushes(3, rng=rng), synthetic_pulls(2, rng=rng)
    result = measure_sync(pushes, pulls, repeats=1)
    assert result["pushes"] == 3
    assert result["pulls"] == 2
    assert result["push_bytes_median"] == float(np.median([len(encode(p)) for p in pushes]))
    with pytest.raises(InputError):
        measure_sync([], pulls)
