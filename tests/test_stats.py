"""bench.stats against formulas and scipy computed by hand."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bench import stats
from bench.errors import BenchError


@pytest.fixture
def paired_accuracies():
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0, 0.1, 300)
    a = np.clip(0.6 + difficulty + rng.normal(0, 0.05, 300), 0, 1)
    b = np.clip(0.58 + difficulty + rng.normal(0, 0.05, 300), 0, 1)
    return np.round(a * 75) / 75, np.round(b * 75) / 75


def test_ci_normal_is_196_standard_errors():
    values = np.array([0.5, 0.6, 0.7, 0.8, 0.4])
    expected = 1.96 * values.std(ddof=1) / math.sqrt(values.size)
    assert stats.ci_halfwidth(values, "normal") == pytest.approx(expected)


def test_ci_t_uses_student_quantile_and_is_wider():
    values = np.array([0.5, 0.6, 0.7, 0.8, 0.4])
    expected = scipy_stats.t.ppf(0.975, 4) * values.std(ddof=1) / math.sqrt(values.size)
    assert stats.ci_halfwidth(values, "t") == pytest.approx(expected)
    assert stats.ci_halfwidth(values, "t") > stats.ci_halfwidth(values, "normal")


def test_ci_of_one_value_is_nan_and_unknown_method_is_refused():
    assert math.isnan(stats.ci_halfwidth([0.5]))
    with pytest.raises(BenchError, match="unknown CI method 'bootstrap'; valid: normal, t"):
        stats.ci_halfwidth([0.5, 0.6], "bootstrap")


def test_paired_test_matches_scipy(paired_accuracies):
    a, b = paired_accuracies
    result = stats.paired_test(a, b, "t")
    diff = a - b
    assert result.mean_diff == pytest.approx(diff.mean())
    assert result.ci95 == pytest.approx(
        scipy_stats.t.ppf(0.975, diff.size - 1) * diff.std(ddof=1) / math.sqrt(diff.size))
    assert result.t_p == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue)
    assert result.wilcoxon_p == pytest.approx(scipy_stats.wilcoxon(a, b).pvalue)
    assert result.n == a.size
    assert result.t_p < 0.05


def test_paired_test_of_identical_scores_finds_nothing():
    a = np.array([0.4, 0.5, 0.6])
    result = stats.paired_test(a, a.copy())
    assert (result.mean_diff, result.ci95, result.t_p, result.wilcoxon_p) == (0, 0, 1, 1)


def test_paired_test_refuses_unequal_lengths():
    with pytest.raises(BenchError, match="same episodes"):
        stats.paired_test(np.zeros(3), np.zeros(4))


def test_holm_by_hand():
    pvalues = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    assert stats.holm(pvalues) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_keeps_nan_and_order():
    adjusted = stats.holm([0.5, np.nan, 0.2, 0.9])
    assert adjusted[0] == pytest.approx(min(1, max(0.2 * 3, 0.5 * 2)))
    assert math.isnan(adjusted[1])
    assert adjusted[2] == pytest.approx(0.6)
    assert adjusted[3] == 1.0


def test_intervals_overlap_and_combined_ci():
    assert stats.intervals_overlap(50, 1, 51.9, 1)
    assert not stats.intervals_overlap(50, 1, 52.1, 1)
    assert stats.combined_ci([1.0, 1.0]) == pytest.approx(math.sqrt(2) / 2)
