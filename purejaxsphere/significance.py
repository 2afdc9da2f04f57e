"""Significance tests between two algorithms on one per-seed metric (scipy.stats), for `purejaxsphere report`.

Across seeds (independent samples): Welch's t-test (unequal variances) and the Mann-Whitney U test (two-sided).
When both algorithms ran the same seeds, each seed once, the seeds are paired as well: the paired t-test and the
Wilcoxon signed-rank test (two-sided; zero differences dropped, scipy's default). Effect size: the difference of
the means with its 95% percentile-bootstrap CI (continual.bootstrap_difference_ci; with paired seeds also the CI
of the mean paired difference). No correction for multiple comparisons is applied.

A test that is undefined gives a NaN p-value and a note instead of failing: fewer than 2 seeds (pairs) on a side,
no variance where the t statistic divides by it (scipy would report p = 0 for two different constants), all
values identical (rank tests), or all paired differences 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from purejaxsphere import continual

NAN = float("nan")


@dataclass(frozen=True)
class TestResult:
    statistic: float = NAN
    p_value: float = NAN
    note: str = ""


@dataclass(frozen=True)
class Comparison:
    """Algorithm a against b on one metric: effect size and the four tests (paired ones only with paired seeds)."""

    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    difference: float  # mean_a - mean_b
    ci_low: float
    ci_high: float
    welch: TestResult
    mann_whitney: TestResult
    n_pairs: int = 0  # 0: not paired (different seeds)
    paired_difference: float = NAN
    paired_ci_low: float = NAN
    paired_ci_high: float = NAN
    paired_t: TestResult = field(default_factory=TestResult)
    wilcoxon: TestResult = field(default_factory=TestResult)
    notes: tuple[str, ...] = ()

    @property
    def paired(self) -> bool:
        return self.n_pairs > 0


def finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[np.isfinite(x)]


def run_test(name: str, *samples: np.ndarray, **options: Any) -> TestResult:
    """scipy.stats.<name>(*samples, **options) as floats (statistic, p-value), its precision warnings silenced."""
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = getattr(stats, name)(*samples, **options)
    return TestResult(float(result.statistic), float(result.pvalue))


def welch_test(a: np.ndarray, b: np.ndarray) -> TestResult:
    if min(a.size, b.size) < 2:
        return TestResult(note="Welch: needs >= 2 seeds per algorithm")
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return TestResult(note="Welch: no variance within either algorithm")
    return run_test("ttest_ind", a, b, equal_var=False)


def mann_whitney_test(a: np.ndarray, b: np.ndarray) -> TestResult:
    if min(a.size, b.size) < 2:
        return TestResult(note="Mann-Whitney: needs >= 2 seeds per algorithm")
    if np.ptp(np.concatenate([a, b])) == 0:
        return TestResult(note="Mann-Whitney: all values identical")
    return run_test("mannwhitneyu", a, b, alternative="two-sided")


def paired_t_test(a: np.ndarray, b: np.ndarray) -> TestResult:
    if a.size < 2:
        return TestResult(note="paired t: needs >= 2 paired seeds")
    if np.ptp(a - b) == 0:
        return TestResult(note="paired t: every paired difference equal (no variance)")
    return run_test("ttest_rel", a, b)


def wilcoxon_test(a: np.ndarray, b: np.ndarray) -> TestResult:
    if a.size < 2:
        return TestResult(note="Wilcoxon: needs >= 2 paired seeds")
    if np.all(a - b == 0):
        return TestResult(note="Wilcoxon: every paired difference is 0")
    return run_test("wilcoxon", a, b, alternative="two-sided")


def paired_values(
    a: Sequence[float], seeds_a: Sequence[int], b: Sequence[float], seeds_b: Sequence[int]
) -> tuple[np.ndarray, np.ndarray] | None:
    """(a, b) aligned by seed, pairs with a non-finite side left out, when both ran the same seeds once each;
    None otherwise."""
    if len(set(seeds_a)) != len(seeds_a) or sorted(seeds_a) != sorted(seeds_b):
        return None
    by_seed = dict(zip(seeds_b, b))
    x = np.array([float(v) for v in a])
    y = np.array([float(by_seed[s]) for s in seeds_a])
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def compare(
    a: Sequence[float], b: Sequence[float], seeds_a: Sequence[int] | None = None,
    seeds_b: Sequence[int] | None = None,
) -> Comparison:
    """Compare per-seed values of algorithm a with b (non-finite values, e.g. dropped seeds, left out)."""
    x, y = finite(a), finite(b)
    mean = lambda v: float(v.mean()) if v.size else NAN  # noqa: E731
    low, high = continual.bootstrap_difference_ci(x, y)
    unpaired = dict(n_a=x.size, n_b=y.size, mean_a=mean(x), mean_b=mean(y), difference=mean(x) - mean(y),
                    ci_low=low, ci_high=high, welch=welch_test(x, y), mann_whitney=mann_whitney_test(x, y))
    pairs = None if seeds_a is None or seeds_b is None else paired_values(a, seeds_a, b, seeds_b)
    if pairs is None:
        return Comparison(**unpaired, notes=_notes(unpaired["welch"], unpaired["mann_whitney"])
                          + (("different seeds: no paired tests",) if seeds_a is not None else ()))
    px, py = pairs
    paired_low, paired_high = continual.bootstrap_ci(px - py)
    paired_t, wilcoxon = paired_t_test(px, py), wilcoxon_test(px, py)
    return Comparison(**unpaired, n_pairs=px.size, paired_difference=mean(px - py), paired_ci_low=paired_low,
                      paired_ci_high=paired_high, paired_t=paired_t, wilcoxon=wilcoxon,
                      notes=_notes(unpaired["welch"], unpaired["mann_whitney"], paired_t, wilcoxon))


def _notes(*results: TestResult) -> tuple[str, ...]:
    return tuple(r.note for r in results if r.note)
