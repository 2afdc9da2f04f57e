"""Significance tests between algorithms against scipy.stats and against closed forms / exact enumeration."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from purejaxsphere import continual
from purejaxsphere.significance import compare, paired_values

A = np.array([0.62, 0.48, 0.55, 0.71, 0.50])  # e.g. SPHERE, seeds 0-4
B = np.array([0.20, 0.31, 0.18, 0.25, 0.33])  # Top-K MoE, same seeds
C = np.array([0.40, 0.52, 0.35])  # another algorithm, 3 seeds


def welch_closed_form(a, b):
    """t = (mean a - mean b) / sqrt(va/na + vb/nb), Welch-Satterthwaite df, two-sided p."""
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    return t, 2 * stats.t.sf(abs(t), df)


def mann_whitney_exact(a, b):
    """Two-sided exact p: the share of all splits of the pooled values whose U is at least as extreme (no ties)."""
    pooled, n = np.concatenate([a, b]), a.size
    u = lambda x, y: sum((xi > yj) + 0.5 * (xi == yj) for xi in x for yj in y)  # noqa: E731
    observed = u(a, b)
    centre = a.size * b.size / 2
    us = []
    for chosen in itertools.combinations(range(pooled.size), n):
        rest = [i for i in range(pooled.size) if i not in chosen]
        us.append(u(pooled[list(chosen)], pooled[rest]))
    return observed, np.mean([abs(x - centre) >= abs(observed - centre) - 1e-12 for x in us])


def wilcoxon_exact(a, b):
    """Two-sided exact p of the signed-rank statistic min(W+, W-) over all 2^n sign flips (no ties, no zeros)."""
    d = a - b
    ranks = stats.rankdata(np.abs(d))
    w_plus = ranks[d > 0].sum()
    total = ranks.sum()
    flips = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product([0, 1], repeat=d.size)]
    observed = min(w_plus, total - w_plus)
    return observed, np.mean([min(w, total - w) <= observed + 1e-12 for w in flips])


def test_same_seeds_run_all_four_tests_against_closed_forms_and_scipy():
    c = compare(A, B, [0, 1, 2, 3, 4], [0, 1, 2, 3, 4])
    t, p = welch_closed_form(A, B)
    assert (c.welch.statistic, c.welch.p_value) == pytest.approx((t, p), rel=1e-9)
    u, p_u = mann_whitney_exact(A, B)
    assert (c.mann_whitney.statistic, c.mann_whitney.p_value) == pytest.approx((u, p_u), rel=1e-9)
    d = A - B
    t_rel = d.mean() / (d.std(ddof=1) / math.sqrt(d.size))
    assert c.paired_t.statistic == pytest.approx(t_rel, rel=1e-9)
    assert c.paired_t.p_value == pytest.approx(2 * stats.t.sf(abs(t_rel), d.size - 1), rel=1e-9)
    assert c.paired_t.p_value == pytest.approx(stats.ttest_rel(A, B).pvalue, rel=1e-12)
    w, p_w = wilcoxon_exact(A, B)
    assert (c.wilcoxon.statistic, c.wilcoxon.p_value) == pytest.approx((w, p_w), rel=1e-9)
    assert c.wilcoxon.p_value == pytest.approx(stats.wilcoxon(A, B).pvalue, rel=1e-12)
    assert c.difference == pytest.approx(A.mean() - B.mean())
    assert (c.ci_low, c.ci_high) == continual.bootstrap_difference_ci(A, B)
    assert c.ci_low <= c.difference <= c.ci_high
    assert c.paired and c.n_pairs == 5 and c.paired_difference == pytest.approx(d.mean())
    assert (c.paired_ci_low, c.paired_ci_high) == continual.bootstrap_ci(d) and c.notes == ()


def test_pairs_follow_the_seed_ids_not_the_order():
    # B listed in reverse seed order: pairing by seed gives the same paired tests.
    c = compare(A, B[::-1], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0])
    assert c.paired_t.p_value == pytest.approx(stats.ttest_rel(A, B).pvalue, rel=1e-12)


def test_different_seeds_are_compared_unpaired():
    c = compare(A, C, [0, 1, 2, 3, 4], [0, 1, 2])
    assert c.welch.p_value == pytest.approx(stats.ttest_ind(A, C, equal_var=False).pvalue, rel=1e-12)
    assert c.mann_whitney.p_value == pytest.approx(stats.mannwhitneyu(A, C).pvalue, rel=1e-12)
    assert not c.paired and math.isnan(c.paired_t.p_value) and math.isnan(c.wilcoxon.p_value)
    assert c.notes == ("different seeds: no paired tests",)
    assert paired_values([1.0, 2.0], [0, 0], [1.0, 2.0], [0, 0]) is None  # a seed twice: no pairing


def test_dropped_seeds_are_left_out():
    a = np.array([0.6, np.nan, 0.5, 0.7])
    b = np.array([0.2, 0.3, np.nan, 0.1])
    c = compare(a, b, [0, 1, 2, 3], [0, 1, 2, 3])
    assert (c.n_a, c.n_b, c.n_pairs) == (3, 3, 2)  # pairs: seeds 0 and 3
    assert c.welch.p_value == pytest.approx(stats.ttest_ind([0.6, 0.5, 0.7], [0.2, 0.3, 0.1], equal_var=False).pvalue)
    assert c.paired_t.p_value == pytest.approx(stats.ttest_rel([0.6, 0.7], [0.2, 0.1]).pvalue)


def test_undefined_tests_give_nan_with_a_note():
    one = compare([0.5], [0.1, 0.2], [0], [0, 1])
    assert math.isnan(one.welch.p_value) and math.isnan(one.mann_whitney.p_value)
    assert "Welch: needs >= 2 seeds per algorithm" in one.notes
    assert one.difference == pytest.approx(0.35)
    # Two different constants: scipy's t-test says p = 0 (t = inf); ours is undefined. Ranks still separate them.
    constants = compare([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0, 1, 2], [0, 1, 2])
    assert math.isnan(constants.welch.p_value) and math.isnan(constants.paired_t.p_value)
    assert constants.mann_whitney.p_value == pytest.approx(stats.mannwhitneyu([1.0] * 3, [0.0] * 3).pvalue)
    assert constants.wilcoxon.p_value == pytest.approx(0.25)  # all 3 differences positive: 2 * (1/2)^3
    assert set(constants.notes) == {"Welch: no variance within either algorithm",
                                    "paired t: every paired difference equal (no variance)"}
    identical = compare([0.0, 0.0], [0.0, 0.0], [0, 1], [0, 1])
    assert all(math.isnan(r.p_value) for r in (identical.welch, identical.mann_whitney, identical.paired_t,
                                              identical.wilcoxon))
    assert "Wilcoxon: every paired difference is 0" in identical.notes and identical.difference == 0.0
    empty = compare([np.nan], [np.nan], [0], [0])
    assert math.isnan(empty.difference) and math.isnan(empty.ci_low) and empty.n_pairs == 0
