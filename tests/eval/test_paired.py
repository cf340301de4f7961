"""Paired statistics checked against independent computations on fixed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kpremia.eval.paired import bootstrap_interval, iqm, paired_differences, paired_stats, verdict, win_rate


def test_iqm_of_a_known_list() -> None:
    # 8 values: cut 2 at each end, the middle four are 3, 4, 5, 6 -> (3 + 4 + 5 + 6) / 4
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx(4.5)
    # one wild value does not move the IQM, it moves the mean
    assert iqm([1, 2, 3, 4, 5, 6, 7, 1000]) == pytest.approx(4.5)
    assert math.isnan(iqm([]))


def test_win_rate_counts_ties_half() -> None:
    assert win_rate([1.0, -1.0, 0.0, 2.0]) == pytest.approx((2 + 0.5) / 4)


def test_paired_differences_use_common_markets_only() -> None:
    diffs = paired_differences({"a": 0.05, "b": 0.01, "c": 0.02}, {"a": 0.03, "b": 0.04})
    assert diffs == pytest.approx({"a": 0.02, "b": -0.03})


def _numpy_stratified_bootstrap(groups: list[np.ndarray], n: int, seed: int) -> tuple[float, float]:
    """Independent reference: resample each stratum with replacement, pooled mean, 2.5/97.5 percentiles."""
    rng = np.random.default_rng(seed)
    means = np.empty(n)
    for i in range(n):
        means[i] = np.concatenate([rng.choice(g, size=g.size, replace=True) for g in groups]).mean()
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def test_stratified_interval_matches_an_independent_bootstrap() -> None:
    seed_a = np.array([0.031, -0.012, 0.044, 0.008, 0.019, -0.027, 0.052, 0.011])
    seed_b = np.array([-0.041, -0.018, -0.003, -0.055, 0.006, -0.030, -0.022, -0.047])
    values = np.concatenate([seed_a, seed_b])
    strata = [0] * 8 + [1] * 8
    low, high = bootstrap_interval(values, strata, n_resamples=20000, seed=1)
    ref_low, ref_high = _numpy_stratified_bootstrap([seed_a, seed_b], 20000, seed=2)
    width = ref_high - ref_low
    assert low == pytest.approx(ref_low, abs=0.05 * width)
    assert high == pytest.approx(ref_high, abs=0.05 * width)
    # stratifying removes the between-seed spread: narrower than resampling the pooled 16 values
    pooled_low, pooled_high = _numpy_stratified_bootstrap([values], 20000, seed=3)
    assert high - low < 0.9 * (pooled_high - pooled_low)


def test_known_interval_with_a_fixed_seed_is_reproducible_and_near_the_normal_one() -> None:
    values = np.linspace(-0.02, 0.06, 41)  # mean 0.02, sd 0.0236
    first = bootstrap_interval(values, seed=7)
    assert first == bootstrap_interval(values, seed=7)
    half = 1.96 * values.std(ddof=0) / math.sqrt(values.size)
    assert first[0] == pytest.approx(0.02 - half, abs=0.15 * half)
    assert first[1] == pytest.approx(0.02 + half, abs=0.15 * half)


def test_verdict_only_when_the_interval_says_so() -> None:
    ahead = paired_stats([0.02, 0.03, 0.025, 0.04, 0.01, 0.035])
    assert ahead.verdict == "ahead of the band rule" and ahead.ci_low > 0
    behind = paired_stats([-0.02, -0.03, -0.025, -0.04, -0.01], reference="buy-and-hold")
    assert behind.verdict == "behind buy-and-hold" and behind.ci_high < 0
    level = paired_stats([0.05, -0.04, 0.03, -0.06, 0.01, -0.02])
    assert level.verdict == "level with the band rule" and level.ci_low < 0 < level.ci_high
    assert paired_stats([0.5]).verdict == "too few markets to tell"
    assert verdict(math.nan, math.nan) == "too few markets to tell"


def test_summary_numbers_and_lone_strata() -> None:
    stats = paired_stats([0.01, 0.02, 0.03, 0.10, float("nan")], strata=["s0", "s0", "s1", "s2", "s2"])
    assert stats.n == 4
    assert stats.mean == pytest.approx(0.04)
    assert stats.median == pytest.approx(0.025)
    assert stats.win_rate == 1.0
    assert stats.ci_low <= stats.mean <= stats.ci_high
