"""Paired statistics of one claim: effect, t and bootstrap intervals, one-sided tests, Holm.

See the package docstring (``firm_bench.paper.claims``) for how they are chosen and used.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: family-wise error rate of the Holm correction (each direction)
ALPHA = 0.05
#: confidence level of the intervals (unadjusted)
LEVEL = 0.95
#: resamples of the paired bootstrap
N_RESAMPLES = 10_000
#: seed of the paired bootstrap (numpy.random.default_rng)
BOOTSTRAP_SEED = 0
#: from this many pairs the t interval is used whatever the normality check says (central limit)
CLT_PAIRS = 30
#: Shapiro-Wilk p below which the differences count as not normal (bootstrap interval, Wilcoxon test)
NORMALITY_ALPHA = 0.05


def paired_t_interval(d: Sequence[float] | np.ndarray, level: float = LEVEL) -> tuple[float, float, float]:
    """Mean of the paired differences and its t interval: d_bar +/- t_{(1+level)/2, n-1} s / sqrt(n).

    n < 2 gives (d_bar, nan, nan); identical differences give a zero-width interval.
    """
    from scipy import stats

    d = np.asarray(d, dtype=float)
    n = d.size
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(d.mean())
    if n < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf((1 + level) / 2, n - 1)) * float(d.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def ratio_t_interval(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                     level: float = LEVEL) -> tuple[float, float, float]:
    """Relative effect r = mean(a) / mean(b) - 1 (in %) and its delta-method t interval (paired).

    With r0 = a_bar / b_bar, the linearisation of the ratio of paired means gives
    se = sd(a_i - r0 b_i) / (sqrt(n) b_bar); the interval is
    100 (r0 +/- t_{(1+level)/2, n-1} se) - 100.
    """
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = a.size
    if n == 0 or b.mean() == 0:
        return math.nan, math.nan, math.nan
    r0 = float(a.mean() / b.mean())
    if n < 2:
        return (r0 - 1) * 100, math.nan, math.nan
    se = float(np.std(a - r0 * b, ddof=1)) / (math.sqrt(n) * float(b.mean()))
    half = float(stats.t.ppf((1 + level) / 2, n - 1)) * se
    return (r0 - 1) * 100, (r0 - half - 1) * 100, (r0 + half - 1) * 100


def bootstrap_interval(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray | None = None, *,
                       effect: str = "difference", n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                       level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of the paired bootstrap: resample the pairs (i.i.d., with replacement).

    ``difference``: the mean of a - b (``b`` None: of ``a`` itself, already
    differences). ``relative``: 100 (mean(a*) / mean(b*) - 1), a and b resampled
    together. ``numpy.random.default_rng(seed)``: the same inputs give the same interval.
    """
    a = np.asarray(a, dtype=float)
    n = a.size
    if n < 2:
        return math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    if effect == "relative":
        b = np.asarray(b, dtype=float)
        stat = (a[idx].mean(axis=1) / b[idx].mean(axis=1) - 1) * 100
    else:
        d = a - (np.asarray(b, dtype=float) if b is not None else 0.0)
        stat = d[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(stat, [tail, 100 - tail])
    return float(lo), float(hi)


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values; NaN entries stay NaN and do not count in the family.

    Sorted p_(1) <= ... <= p_(m): adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)).
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adj
    return out


def _t_test(d: np.ndarray, boundary: float, alternative: str) -> float:
    """One-sided one-sample t test of the differences against ``boundary`` (identical differences handled)."""
    from scipy import stats

    if d.size < 2:
        return math.nan
    x = d - boundary
    if float(np.ptp(x)) == 0.0:  # no spread: the sign decides (t is +/- infinite; 0/0 on the boundary)
        if x[0] == 0:
            return 0.5
        return 0.0 if (x[0] > 0) == (alternative == "greater") else 1.0
    with warnings.catch_warnings():  # nearly identical differences: scipy warns of precision loss, t is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_1samp(x, 0.0, alternative=alternative).pvalue)


def _wilcoxon(d: np.ndarray, boundary: float, alternative: str) -> float:
    """One-sided Wilcoxon signed-rank test of the differences against ``boundary`` (zeros dropped)."""
    from scipy import stats

    x = d - boundary
    if d.size < 2:
        return math.nan
    if np.count_nonzero(x) == 0:
        return 0.5
    nz = np.abs(x[x != 0])
    exact = nz.size == x.size <= 50 and np.unique(nz).size == nz.size  # no zeros, no ties: the exact distribution
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.wilcoxon(x, alternative=alternative, zero_method="wilcox",
                                    method="exact" if exact else "asymptotic").pvalue)


@dataclass(frozen=True)
class EffectStats:
    """Our effect of one claim and its uncertainty (see the module docstring)."""

    n: int
    estimate: float
    t_low: float
    t_high: float
    boot_low: float
    boot_high: float
    ci_method: str  # "t" | "bootstrap"
    normality_p: float
    test: str  # "t" | "wilcoxon"
    p_t: float
    p_wilcoxon: float
    p_t_against: float
    p_wilcoxon_against: float
    mean_a: float
    mean_b: float

    @property
    def ci(self) -> tuple[float, float]:
        return (self.t_low, self.t_high) if self.ci_method == "t" else (self.boot_low, self.boot_high)

    @property
    def p_for(self) -> float:
        return self.p_t if self.test == "t" else self.p_wilcoxon

    @property
    def p_against(self) -> float:
        return self.p_t_against if self.test == "t" else self.p_wilcoxon_against


def effect_stats(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *, effect: str = "difference",
                 alternative: str = "greater", boundary: float = 0.0, n_resamples: int = N_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED, level: float = LEVEL) -> EffectStats:
    """Effect, both intervals and the one-sided paired tests of paired values ``a``, ``b`` (arrays of n).

    The tests are on the differences d = a - b against ``boundary`` (for a
    relative effect the sign of mean(a)/mean(b) - 1 is the sign of mean(d), so
    they test the same ordering). ``alternative`` is the claimed side.
    """
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need equal 1-D shapes, got {a.shape} and {b.shape}")
    d = a - b
    n = d.size
    if effect == "relative":
        est, t_lo, t_hi = ratio_t_interval(a, b, level)
        boot = bootstrap_interval(a, b, effect="relative", n_resamples=n_resamples, seed=seed, level=level)
    else:
        est, t_lo, t_hi = paired_t_interval(d, level)
        boot = bootstrap_interval(d, effect="difference", n_resamples=n_resamples, seed=seed, level=level)
    normal_p = math.nan
    if n >= 3 and np.ptp(d) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            normal_p = float(stats.shapiro(d).pvalue)
    use_t = n >= CLT_PAIRS or not (normal_p < NORMALITY_ALPHA)  # NaN (no spread, n < 3): t
    against = "less" if alternative == "greater" else "greater"
    return EffectStats(
        n=n, estimate=est, t_low=t_lo, t_high=t_hi, boot_low=boot[0], boot_high=boot[1],
        ci_method="t" if use_t else "bootstrap", normality_p=normal_p, test="t" if use_t else "wilcoxon",
        p_t=_t_test(d, boundary, alternative), p_wilcoxon=_wilcoxon(d, boundary, alternative),
        p_t_against=_t_test(d, boundary, against), p_wilcoxon_against=_wilcoxon(d, boundary, against),
        mean_a=float(a.mean()) if n else math.nan, mean_b=float(b.mean()) if n else math.nan)


