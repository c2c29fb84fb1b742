"""Bootstrap estimates: point values by hand, seeded intervals, pooled ratios, paired deltas."""

from __future__ import annotations

import math

from duplexalign.evaluate.metrics import Estimate, diff_ci, mean_ci, quantiles, ratio_ci


def test_mean_ci_value_and_reproducible_interval():
    e = mean_ci([1, 0, 1, 1, None], resamples=500, seed=1)
    assert e.value == 0.75 and e.n == 4  # None is ignored
    assert 0.0 <= e.low <= e.value <= e.high <= 1.0
    assert mean_ci([1, 0, 1, 1], resamples=500, seed=1) == e


def test_constant_values_have_a_zero_width_interval():
    e = mean_ci([2.0] * 10)
    assert (e.value, e.low, e.high) == (2.0, 2.0, 2.0)


def test_empty_gives_nan_and_serialises_to_none():
    e = mean_ci([])
    assert math.isnan(e.value) and e.n == 0
    assert e.to_dict()["value"] is None
    assert math.isnan(Estimate.from_dict(e.to_dict()).value)


def test_ratio_pools_events_across_samples():
    # sample 1: 1 of 1 pauses taken over; sample 2: 0 of 3 -> pooled 1/4, not mean(1, 0) = 0.5
    e = ratio_ci([1, 0], [1, 3], resamples=200)
    assert e.value == 0.25 and e.n == 4
    assert math.isnan(ratio_ci([0, 0], [0, 0]).value)


def test_paired_difference():
    a = [0, 0, 1, 1]
    b = [1, 0, 1, 1]
    d = diff_ci(a, b, paired=True, resamples=300)
    assert d.value == 0.25
    assert d.low >= 0.0  # no pair got worse
    u = diff_ci([0, 0], [1, 1, 1])
    assert (u.value, u.low, u.high) == (1.0, 1.0, 1.0)


def test_quantiles():
    assert quantiles([1, 2, 3, 4, 5]) == {"p50": 3.0, "p90": 4.6}
    assert quantiles([]) == {}
