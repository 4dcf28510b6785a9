"""Confidence intervals and paired tests over per-episode accuracies.

Plain numpy/scipy on arrays: no pandas, no results files. Accuracies may be fractions (0..1) or
percent; every function returns values in the units it was given.

- ``ci_halfwidth``: half-width of the 95% CI of a mean, ``normal`` (1.96·σ/√n, the few-shot
  convention) or ``t`` (Student quantile with n−1 degrees of freedom; wider for small n).
- ``paired_test``: two methods scored on the *same* episodes, episode by episode: the mean
  difference with its 95% CI, the paired t-test and the Wilcoxon signed-rank test. Pairing removes
  the episode-difficulty variance both methods share, so it detects differences that two
  overlapping CIs hide.
- ``holm``: Holm's step-down adjustment of a family of p-values (controls the family-wise error
  rate without assuming independence).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.errors import BenchError

CI_METHODS = ("normal", "t")
NORMAL_Z95 = 1.96


def check_ci_method(ci_method: str) -> None:
    if ci_method not in CI_METHODS:
        raise BenchError(f"unknown CI method {ci_method!r}; valid: {', '.join(CI_METHODS)}")


def ci_halfwidth(values, ci_method: str = "normal") -> float:
    """Half-width of the 95% CI of the mean of ``values`` (sample σ, ddof=1); NaN for n < 2."""
    from scipy import stats

    check_ci_method(ci_method)
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n < 2:
        return float("nan")
    standard_error = values.std(ddof=1) / np.sqrt(n)
    quantile = NORMAL_Z95 if ci_method == "normal" else stats.t.ppf(0.975, n - 1)
    return float(quantile * standard_error)


def mean_ci(values, ci_method: str = "normal") -> tuple[float, float]:
    """(mean, 95% CI half-width) of ``values``."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), ci_halfwidth(values, ci_method)


def intervals_overlap(mean_a: float, ci_a: float, mean_b: float, ci_b: float) -> bool:
    """Whether [mean_a ± ci_a] and [mean_b ± ci_b] overlap (the test used on unpaired results)."""
    return abs(mean_a - mean_b) <= ci_a + ci_b


@dataclass(frozen=True)
class PairedTest:
    """``a − b`` on the same episodes: mean difference, its 95% CI half-width, two p-values, n."""

    mean_diff: float
    ci95: float
    t_p: float
    wilcoxon_p: float
    n: int


def paired_test(a, b, ci_method: str = "t") -> PairedTest:
    """Paired comparison of two methods' accuracies on the same episodes, in episode order.

    The t-test (``scipy.stats.ttest_rel``) tests the mean difference; the Wilcoxon signed-rank test
    (``scipy.stats.wilcoxon``, zero differences dropped, scipy's default method) needs no normality.
    When every difference is zero there is no evidence of a difference, and both p-values are 1.
    """
    from scipy import stats

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise BenchError(f"paired test needs two equally long episode lists, got {a.shape} and "
                         f"{b.shape}; were they measured on the same episodes?")
    if a.size < 2:
        raise BenchError("paired test needs at least 2 episodes")
    diff = a - b
    mean_diff, half = mean_ci(diff, ci_method)
    if not np.any(diff):
        return PairedTest(mean_diff, 0.0, 1.0, 1.0, int(diff.size))
    t_p = float(stats.ttest_rel(a, b).pvalue)
    wilcoxon_p = float(stats.wilcoxon(a, b).pvalue)
    return PairedTest(mean_diff, half, t_p, wilcoxon_p, int(diff.size))


def holm(pvalues) -> np.ndarray:
    """Holm-adjusted p-values, in the order given.

    Sorted ascending, the i-th smallest (0-based) of m is multiplied by (m − i); a running maximum
    keeps the adjusted values monotone, and they are capped at 1. NaNs stay NaN and do not count.
    """
    pvalues = np.asarray(pvalues, dtype=np.float64)
    adjusted = np.full(pvalues.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(pvalues))
    order = valid[np.argsort(pvalues[valid], kind="stable")]
    m = order.size
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted


def combined_ci(ci95s) -> float:
    """CI half-width of the mean of k independent estimates with the given half-widths.

    Used where per-episode accuracies are not at hand (baselines): sqrt(Σ ci_i²) / k.
    """
    ci95s = np.asarray(ci95s, dtype=np.float64)
    return float(np.sqrt(np.sum(ci95s ** 2)) / ci95s.size)
