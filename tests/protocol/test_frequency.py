"""OLH frequency estimation: unbiased on a known distribution, deniable per report."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from omega.errors import ConfigError, LocalProtocolError
from omega.protocol import codec
from omega.protocol.frequency import (
    bucket_count,
    estimate,
    hash_items,
    keep_probability,
    make_report,
    seed_params,
    support_counts,
)
from omega.protocol.messages import FrequencyReport, PushRequest


def test_parameters_follow_olh() -> None:
    assert bucket_count(8.0) == round(math.exp(8.0)) + 1 == 2982
    assert keep_probability(8.0, 2982) == pytest.approx(math.exp(8) / (math.exp(8) + 2981))
    a, b = seed_params(12345)
    assert 1 <= a < 2**31 - 1 and 0 <= b < 2**31 - 1
    assert seed_params(12345) == (a, b)


def test_estimates_are_unbiased_on_a_zipf_catalog() -> None:
    rng = random.Random(7)
    items = [str(i) for i in range(300)]
    weights = [1.0 / (rank + 1) for rank in range(len(items))]
    chosen = rng.choices(items, weights, k=20_000)
    epsilon = 4.0
    reports = [make_report(item, epsilon, rng) for item in chosen]
    support = support_counts(hash_items(items), reports)
    est = estimate(support, len(reports), epsilon=epsilon, buckets=bucket_count(epsilon))
    truth = np.array([chosen.count(i) for i in items], dtype=np.float64)
    # Per-item standard deviation ≈ sqrt(n · 4e^ε / (e^ε − 1)^2) ≈ 9.6 here.
    sd = math.sqrt(len(reports) * 4 * math.exp(epsilon) / (math.exp(epsilon) - 1) ** 2)
    assert np.abs(est - truth).max() < 5 * sd
    assert abs(est.sum() - truth.sum()) < 0.05 * truth.sum() + 5 * sd * math.sqrt(len(items))
    assert np.corrcoef(est, truth)[0, 1] > 0.95
    top10 = set(np.argsort(-est)[:10].tolist())
    assert len(top10 & set(range(10))) >= 8


def test_one_report_matches_many_titles() -> None:
    """A report is deniable: about catalog / g titles share its bucket."""
    rng = random.Random(1)
    items = [str(i) for i in range(50_000)]
    hashes = hash_items(items)
    epsilon = 4.0
    for _ in range(20):
        report = make_report("123", epsilon, rng)
        matches = int(support_counts(hashes, [report]).sum())
        assert matches > len(items) / report.buckets / 3


def test_reports_go_on_the_wire_and_are_checked() -> None:
    report = make_report("42", 8.0, random.Random(3))
    push = PushRequest(viewer_id="v", batch_id="b", codebook_id="c", reports=[report])
    assert codec.decode(codec.encode(push), expect=PushRequest) == push
    bad = FrequencyReport(seed=1, value=5, buckets=5, epsilon=8.0)
    with pytest.raises(LocalProtocolError, match="value"):
        codec.encode(PushRequest(viewer_id="v", batch_id="b", codebook_id="c", reports=[bad]))
    with pytest.raises(LocalProtocolError, match="reports"):
        codec.encode(
            PushRequest(viewer_id="v", batch_id="b", codebook_id="c", reports=[report] * 9)
        )
    with pytest.raises(ConfigError, match="epsilon"):
        make_report("42", 0.0, random.Random(3))
