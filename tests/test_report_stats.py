"""Seed statistics against scipy and against their textbook definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from orchestrator.report.stats import describe, holm, min_wilcoxon_pairs, paired_comparison, welch_comparison

VALUES = [80.0, 81.5, 79.0, 82.25]


def test_describe_matches_scipy_and_the_t_interval_definition():
    est = describe(VALUES)
    n = len(VALUES)
    mean = sum(VALUES) / n
    s = math.sqrt(sum((v - mean) ** 2 for v in VALUES) / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * s / math.sqrt(n)
    assert est.n == n
    assert est.mean == pytest.approx(mean, abs=1e-12)
    assert est.std == pytest.approx(s, abs=1e-12)
    assert est.sem == pytest.approx(stats.sem(VALUES), abs=1e-12)
    assert est.sem == pytest.approx(s / math.sqrt(n), abs=1e-12)
    low, high = stats.t.interval(0.95, n - 1, loc=np.mean(VALUES), scale=stats.sem(VALUES))
    assert (est.ci_low, est.ci_high) == pytest.approx((low, high), abs=1e-12)
    assert (est.ci_low, est.ci_high) == pytest.approx((mean - half, mean + half), abs=1e-12)
    assert est.half_width == pytest.approx(half, abs=1e-12)


def test_describe_other_confidence_level():
    est = describe(VALUES, confidence=0.9)
    low, high = stats.t.interval(0.9, len(VALUES) - 1, loc=np.mean(VALUES), scale=stats.sem(VALUES))
    assert (est.ci_low, est.ci_high) == pytest.approx((low, high), abs=1e-12)


def test_describe_small_samples():
    one = describe([77.0])
    assert one.n == 1 and one.mean == 77.0
    assert all(math.isnan(v) for v in (one.std, one.sem, one.ci_low, one.ci_high))
    none = describe([])
    assert none.n == 0 and math.isnan(none.mean)
    same = describe([70.0, 70.0, 70.0])
    assert (same.std, same.sem, same.ci_low, same.ci_high) == (0.0, 0.0, 70.0, 70.0)


def test_paired_comparison_matches_scipy_on_the_same_numbers():
    a = np.array([83.0, 83.5, 82.5, 84.0, 81.0, 85.5, 83.2])
    b = np.array([80.0, 81.5, 79.0, 82.5, 80.5, 81.0, 80.0])
    r = paired_comparison(a, b)
    d = a - b
    n = d.size
    mean = d.sum() / n
    s = math.sqrt(((d - mean) ** 2).sum() / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * s / math.sqrt(n)
    assert r.n == n
    assert r.mean_diff == pytest.approx(mean, abs=1e-12)
    assert r.std_diff == pytest.approx(s, abs=1e-12)
    assert (r.ci_low, r.ci_high) == pytest.approx((mean - half, mean + half), abs=1e-12)
    t = stats.ttest_rel(a, b)
    assert r.t_statistic == pytest.approx(t.statistic, abs=1e-12)
    assert r.t_statistic == pytest.approx(mean / (s / math.sqrt(n)), abs=1e-12)
    assert r.p_ttest == pytest.approx(t.pvalue, abs=1e-15)
    assert r.p_ttest == pytest.approx(2 * stats.t.sf(abs(mean / (s / math.sqrt(n))), n - 1), abs=1e-15)
    assert r.p_wilcoxon == pytest.approx(stats.wilcoxon(a, b).pvalue, abs=1e-15)
    # Seven positive differences: the exact two-sided Wilcoxon p is 2 / 2**7.
    assert r.p_wilcoxon == pytest.approx(2 / 2**7, abs=1e-15)
    assert r.notes == ()


def test_three_seeds_give_a_t_test_and_an_explicit_wilcoxon_warning():
    r = paired_comparison([83.0, 83.5, 82.5], [80.0, 81.5, 79.0])
    assert r.p_ttest == pytest.approx(stats.ttest_rel([83.0, 83.5, 82.5], [80.0, 81.5, 79.0]).pvalue)
    assert r.p_wilcoxon == pytest.approx(0.25)
    assert any("cannot reach p < 0.05" in n and "needs at least 6" in n for n in r.notes)


def test_one_or_zero_seeds_say_not_enough_seeds():
    one = paired_comparison([83.0], [80.0])
    assert one.n == 1 and one.mean_diff == 3.0 and not one.enough_seeds
    assert all(math.isnan(v) for v in (one.ci_low, one.ci_high, one.p_ttest, one.p_wilcoxon))
    assert "not enough seeds" in one.notes[0]
    zero = paired_comparison([], [])
    assert zero.n == 0 and math.isnan(zero.mean_diff) and "not enough seeds" in zero.notes[0]


def test_degenerate_differences_are_explained_not_reported_as_p_zero():
    shift = paired_comparison([81.0, 82.0, 83.0], [80.0, 81.0, 82.0])
    assert shift.mean_diff == pytest.approx(1.0)
    assert math.isnan(shift.p_ttest) and (shift.ci_low, shift.ci_high) == (1.0, 1.0)
    assert any("zero variance" in n for n in shift.notes)
    equal = paired_comparison([81.0, 82.0], [81.0, 82.0])
    assert math.isnan(equal.p_wilcoxon) and any("all paired differences are 0" in n for n in equal.notes)


def test_paired_comparison_rejects_misaligned_samples():
    with pytest.raises(ValueError, match="aligned"):
        paired_comparison([1.0, 2.0], [1.0])


def test_min_wilcoxon_pairs_is_where_the_exact_test_first_reaches_alpha():
    for alpha in (0.05, 0.01, 0.1):
        n = min_wilcoxon_pairs(alpha)
        all_positive = np.arange(1.0, n + 1)
        assert stats.wilcoxon(all_positive).pvalue < alpha
        assert stats.wilcoxon(all_positive[:-1]).pvalue >= alpha
    assert min_wilcoxon_pairs(0.05) == 6


def test_welch_matches_scipy():
    a, b = [83.0, 84.5, 82.0], [80.0, 81.0, 79.5, 80.5]
    diff, low, high, p = welch_comparison(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert diff == pytest.approx(np.mean(a) - np.mean(b))
    assert p == pytest.approx(ref.pvalue)
    ci = ref.confidence_interval(0.95)
    assert (low, high) == pytest.approx((ci.low, ci.high))
    assert math.isnan(welch_comparison([1.0], [2.0, 3.0])[3])


# ------------------------------------------------------------------------------------------------
# Holm


def holm_rejections(p: list[float], alpha: float) -> set[int]:
    """Holm's step-down procedure, as defined: walk the sorted p-values, reject while
    p_(j) ≤ alpha / (m − j + 1), stop at the first that is not."""
    m = len(p)
    rejected = set()
    for j, i in enumerate(sorted(range(m), key=lambda k: p[k]), start=1):
        if p[i] <= alpha / (m - j + 1):
            rejected.add(i)
        else:
            break
    return rejected


def test_holm_hand_computed_example():
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → running max 0.06
    p = [0.01, 0.04, 0.03, 0.005]
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)


def test_holm_caps_at_one_and_skips_nan():
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    adjusted = holm([0.01, float("nan"), 0.04])
    assert (
        adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    )
    assert holm([]).size == 0
    assert np.isnan(holm([float("nan")])).all()


def test_holm_rejects_exactly_what_the_step_down_procedure_rejects():
    rng = np.random.default_rng(0)
    for _ in range(200):
        m = int(rng.integers(1, 8))
        p = list(rng.uniform(0, 0.2, size=m) ** 2)
        adjusted = holm(p)
        for alpha in (0.001, 0.01, 0.05, 0.1):
            assert {i for i in range(m) if adjusted[i] <= alpha} == holm_rejections(p, alpha)
        assert all(adjusted[i] >= p[i] for i in range(m))
