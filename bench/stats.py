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

Over training runs (``docs/statistics.md``): a training run is itself a random draw, so a method's
accuracy and a difference between methods are also estimated over S runs (seeds), each run's value
being its mean over the test episodes:

- ``seed_ci``: mean of the S per-run values ± t(0.975, S−1)·sd/√S (each run's value already holds
  its episode noise, so this one interval covers both sources).
- ``seed_paired_test``: the per-seed differences d[s] (both runs of seed s on identical episodes):
  mean ± t-CI, the one-sample t-test of d against 0, the exact sign-flip permutation test (all
  2^S sign patterns; smallest possible two-sided p: 2/2^S) and the fraction of seeds with d > 0.
- ``seeds_needed``: runs needed to detect a paired difference δ at power 1 − β, two-sided α,
  from the between-run SD of the differences (t quantiles, solved for the smallest S).
"""

from __future__ import annotations

import math
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
    """Whether [mean_a ± ci_a] and [mean_b ± ci_b] overlap (the test used on unpaired results).
    An interval that is not known (NaN) overlaps everything: no lead is claimed on it."""
    if not all(math.isfinite(value) for value in (mean_a, ci_a, mean_b, ci_b)):
        return True
    return abs(mean_a - mean_b) <= ci_a + ci_b


@dataclass(frozen=True)
class PairedTest:
    """``a − b`` on the same episodes: mean difference, its 95% CI half-width, two p-values, n."""

    mean_diff: float
    ci95: float
    t_p: float
    wilcoxon_p: float
    n: int


def _paired_arrays(a, b, need: str, hint: str, least: str) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` as equally long float64 vectors of at least two values, else BenchError."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise BenchError(f"{need}, got {a.shape} and {b.shape}; {hint}")
    if a.size < 2:
        raise BenchError(f"{need.split(' needs ')[0]} needs at least {least}")
    return a, b


def paired_test(a, b, ci_method: str = "t") -> PairedTest:
    """Paired comparison of two methods' accuracies on the same episodes, in episode order.

    The t-test (``scipy.stats.ttest_rel``) tests the mean difference; the Wilcoxon signed-rank test
    (``scipy.stats.wilcoxon``, zero differences dropped, scipy's default method) needs no normality.
    When every difference is zero there is no evidence of a difference, and both p-values are 1.
    """
    from scipy import stats

    a, b = _paired_arrays(a, b, "paired test needs two equally long episode lists",
                          "were they measured on the same episodes?", "2 episodes")
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


def seed_ci(values) -> tuple[float, float]:
    """(mean, 95% CI half-width over runs) of one value per training run: Student t with S − 1
    degrees of freedom; NaN half-width for S < 2."""
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return float(values.mean()) if values.size else float("nan"), float("nan")
    sd = values.std(ddof=1)
    return (float(values.mean()),
            float(stats.t.ppf(0.975, values.size - 1) * sd / np.sqrt(values.size)))


MAX_EXACT_SEEDS = 16  # 2^16 sign patterns; beyond that the exact test is not computed (NaN)


def signflip_p(differences) -> float:
    """Exact two-sided sign-flip permutation p of paired differences: the share of the 2^S sign
    patterns whose |Σ ±d| is at least |Σ d| (ties within float rounding count). 1 when all are 0;
    NaN for a non-finite difference or more than MAX_EXACT_SEEDS runs."""
    d = np.asarray(differences, dtype=np.float64)
    if d.size > MAX_EXACT_SEEDS or not np.all(np.isfinite(d)):
        return float("nan")  # not enumerable here, or not a number: no p rather than a wrong one
    if not np.any(d):
        return 1.0
    signs = (1 - 2 * ((np.arange(2 ** d.size)[:, None] >> np.arange(d.size)) & 1)).astype(np.int8)
    sums = np.abs(signs @ d)
    observed = abs(d.sum())
    return float(np.mean(sums >= observed - 1e-9 * max(1.0, observed)))


def signflip_floor(seeds: int) -> float:
    """The smallest two-sided p the exact sign-flip test can give with ``seeds`` runs: 2/2^S."""
    return min(1.0, 2.0 / 2 ** seeds)


@dataclass(frozen=True)
class SeedPairedTest:
    """``a − b`` over S training runs, each run's difference measured on identical episodes."""

    differences: tuple  # d[s], in seed order
    mean_diff: float
    ci95: float  # t(0.975, S−1)·sd(d)/√S; NaN for S < 2
    t_p: float  # one-sample t-test of d against 0 (S − 1 degrees of freedom)
    signflip_p: float  # exact, no normality assumed
    wins: float  # fraction of seeds with d > 0 (a tie counts one half)
    sd: float  # between-run SD of the differences

    @property
    def seeds(self) -> int:
        return len(self.differences)


def seed_paired_test(a, b) -> SeedPairedTest:
    """Paired comparison over training runs: ``a[s]`` and ``b[s]`` are the mean accuracies of
    seed s of two methods on identical test episodes (S ≥ 2)."""
    from scipy import stats

    a, b = _paired_arrays(a, b, "a seed-level test needs one value per seed of each method",
                          "pair them seed by seed", "2 seeds (training runs)")
    d = a - b
    mean, half = seed_ci(d)
    sd = float(d.std(ddof=1))
    if not np.all(np.isfinite(d)):
        t_p = float("nan")
    elif sd == 0.0:  # every run differs by the same amount: t is undefined (NaN: no claim);
        t_p = 1.0 if mean == 0 else float("nan")  # no difference at all: p = 1
    else:
        t_p = float(stats.ttest_1samp(d, 0.0).pvalue)
    wins = float(np.mean((d > 0) + 0.5 * (d == 0)))
    return SeedPairedTest(tuple(float(x) for x in d), mean, half, t_p, signflip_p(d), wins, sd)


def seeds_needed(sd: float, delta: float, power: float = 0.8, alpha: float = 0.05,
                 most: int = 10_000) -> int | None:
    """Smallest S with t(1−α/2, S−1) + t(power, S−1) ≤ δ·√S / sd: the training runs a paired
    difference of true size ``delta`` needs to be detected by the seed-level t-test with the given
    power (``docs/statistics.md``), at an unadjusted ``alpha``. 2 is the least; None if more than
    ``most`` or the SD is not known; sd 0 → 2."""
    from scipy import stats

    if not delta > 0:
        raise BenchError(f"the difference to detect must be positive, got {delta}")
    if not math.isfinite(sd) or sd < 0:
        return None
    if sd == 0:
        return 2
    counts = np.arange(2, most + 1)
    enough = (stats.t.ppf(1 - alpha / 2, counts - 1) + stats.t.ppf(power, counts - 1)
              <= delta * np.sqrt(counts) / sd)
    return int(counts[np.argmax(enough)]) if enough.any() else None
