"""Seed statistics: per-configuration estimates, paired comparisons, Holm correction.

Every distribution comes from :mod:`scipy.stats`; this module only decides what is *defined* for a
given number of seeds and says so in words, because the typical multi-seed sweep has three seeds per
configuration and the honest answer is often "not enough seeds" rather than a number.

Why paired by seed: trials of two configurations that share a seed share the data order, the
initialisation stream and the sliding-replacement draws, so their difference has far less variance
than the difference of two independent means (the seed effect cancels).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "Estimate",
    "PairedComparison",
    "describe",
    "holm",
    "min_wilcoxon_pairs",
    "paired_comparison",
    "welch_comparison",
]

NAN = float("nan")


@dataclass(frozen=True)
class Estimate:
    """Mean of one metric over seeds, with its spread and a Student-t confidence interval."""

    n: int
    mean: float
    std: float
    """Sample standard deviation (ddof = 1); NaN for fewer than two seeds."""
    sem: float
    ci_low: float
    ci_high: float
    confidence: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


def describe(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Estimate:
    """Mean, std, SEM and the t confidence interval of ``values`` (NaNs must be removed beforehand).

    With one value the mean is that value and everything else is NaN: a single seed has no spread.
    With identical values the interval collapses to the mean (scipy returns NaN for a zero scale).
    """
    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return Estimate(0, NAN, NAN, NAN, NAN, NAN, confidence)
    mean = float(np.mean(x))
    if n == 1:
        return Estimate(1, mean, NAN, NAN, NAN, NAN, confidence)
    std = float(np.std(x, ddof=1))
    sem = float(stats.sem(x))
    if sem == 0.0:
        low = high = mean
    else:
        low, high = (float(v) for v in stats.t.interval(confidence, df=n - 1, loc=mean, scale=sem))
    return Estimate(n, mean, std, sem, low, high, confidence)


@dataclass(frozen=True)
class PairedComparison:
    """``a − b`` over the seeds both configurations completed."""

    n: int
    mean_diff: float
    std_diff: float
    ci_low: float
    ci_high: float
    t_statistic: float
    p_ttest: float
    p_wilcoxon: float
    notes: tuple[str, ...] = ()
    """Why a number is missing or weak ("not enough seeds", "Wilcoxon cannot reach p < 0.05")."""

    @property
    def enough_seeds(self) -> bool:
        return self.n >= 2


def min_wilcoxon_pairs(alpha: float = 0.05) -> int:
    """Fewest pairs with which a two-sided exact Wilcoxon signed-rank test can reach ``p < alpha``.

    The smallest attainable two-sided p-value with n non-zero differences is 2 / 2**n (every sign
    agreeing), so n must satisfy 2**(1 − n) < alpha. For alpha = 0.05 that is 6: three seeds can never
    give a significant Wilcoxon test, which the report must say rather than print p = 0.25 silently.
    """
    return max(1, math.floor(1 - math.log2(alpha)) + 1)


def paired_comparison(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    alpha: float = 0.05,
) -> PairedComparison:
    """Paired t-test and Wilcoxon signed-rank test of ``a`` against ``b`` (arrays aligned by seed)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be 1-D and aligned, got shapes {a.shape} and {b.shape}")
    n = int(a.size)
    d = a - b
    if n < 2:
        mean = float(d[0]) if n == 1 else NAN
        note = f"not enough seeds: {n} paired seed{'s' if n != 1 else ''}, a paired test needs at least 2"
        return PairedComparison(n, mean, NAN, NAN, NAN, NAN, NAN, NAN, (note,))

    notes: list[str] = []
    mean = float(np.mean(d))
    std = float(np.std(d, ddof=1))
    if std == 0.0:
        # scipy answers t = ±inf, p = 0 (or NaN when all differences are 0): a zero-variance difference
        # is a deterministic shift, not evidence that a t distribution can quantify.
        notes.append("the difference is identical on every seed (zero variance): the t-test is undefined")
        low = high = mean
        t_stat = p_t = NAN
    else:
        result = stats.ttest_rel(a, b)
        interval = result.confidence_interval(confidence)
        low, high = float(interval.low), float(interval.high)
        t_stat, p_t = float(result.statistic), float(result.pvalue)

    nonzero = int(np.count_nonzero(d))
    if nonzero == 0:
        p_w = NAN
        notes.append("all paired differences are 0: the Wilcoxon test is undefined")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p_w = float(stats.wilcoxon(a, b).pvalue)
        needed = min_wilcoxon_pairs(alpha)
        if nonzero < needed:
            notes.append(
                f"Wilcoxon cannot reach p < {alpha:g} with {nonzero} non-zero paired "
                f"difference{'s' if nonzero != 1 else ''} "
                f"(needs at least {needed})"
            )
    return PairedComparison(n, mean, std, low, high, t_stat, p_t, p_w, tuple(notes))


def welch_comparison(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, confidence: float = 0.95
) -> tuple[float, float, float, float]:
    """Unpaired ``mean(a) − mean(b)`` with Welch's t-test: ``(diff, ci_low, ci_high, p)``.

    Used across sweeps when the seeds do not overlap, so there is nothing to pair on.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return NAN, NAN, NAN, NAN
    diff = float(np.mean(a) - np.mean(b))
    if a.size < 2 or b.size < 2 or (np.std(a) == 0 and np.std(b) == 0):
        return diff, NAN, NAN, NAN
    result = stats.ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(confidence)
    return diff, float(interval.low), float(interval.high), float(result.pvalue)


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values; NaNs are not part of the family and stay NaN.

    Sorted ascending, the i-th smallest of the m valid p-values becomes
    ``min(1, max_{j ≤ i} (m − j + 1) · p_(j))`` (the running max keeps the step-down order).
    A hypothesis is rejected at level alpha exactly when its adjusted p-value is ≤ alpha.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out
