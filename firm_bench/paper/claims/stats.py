"""Paired statistics of one claim: effect, t interval, one-sided t test, sign-flip p, Holm, and helpers.

See docs/CLAIMS.md (the one description of the method) for how they are used.
The unit is a seed (a claim about a mean over classes is tested on the per-seed
class means, paired by seed); these functions only see the n paired values.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: family-wise error rate of the Holm correction (one family over both directions of every claim)
ALPHA = 0.05
#: confidence level of the intervals (unadjusted)
LEVEL = 0.95
#: resamples of the paired bootstrap (a column of the CSV; never the verdict)
N_RESAMPLES = 10_000
#: seed of the paired bootstrap and of the Monte Carlo sign flips (numpy.random.default_rng)
BOOTSTRAP_SEED = 0
#: up to this many pairs the sign-flip p enumerates all 2^n sign patterns (exact), beyond it samples them
EXACT_FLIPS = 16
#: sampled sign patterns beyond EXACT_FLIPS pairs
N_FLIPS = 100_000


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


def t_test(d: np.ndarray, boundary: float, alternative: str) -> float:
    """One-sided one-sample t test of the differences against ``boundary`` (identical differences handled)."""
    from scipy import stats

    d = np.asarray(d, dtype=float)
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


def sign_flip_p(d: np.ndarray, boundary: float, alternative: str, *, seed: int = BOOTSTRAP_SEED,
                n_flips: int = N_FLIPS) -> float:
    """One-sided sign-flip permutation p of the mean of d - boundary (a test of the mean under symmetry).

    Every sign pattern of the centred differences x = d - boundary is equally
    likely under the null of a distribution symmetric about the boundary; p is
    the share of patterns whose mean is at least (``greater``; at most,
    ``less``) the observed one. Exact (all 2^n patterns, the observed one
    among them) up to :data:`EXACT_FLIPS` pairs, else ``n_flips`` seeded
    patterns with the observed one counted in ((k + 1) / (N + 1)). Its
    smallest possible p is 2^-n: at n = 5, 1/32.
    """
    x = np.asarray(d, dtype=float) - boundary
    n = x.size
    if n < 2:
        return math.nan
    if n <= EXACT_FLIPS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        extra = 0
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(n_flips, n))
        extra = 1
    means = signs @ x / n
    obs = float(x.mean())
    tol = 1e-12 * max(1.0, float(np.abs(x).max()))
    hits = int(np.count_nonzero(means >= obs - tol if alternative == "greater" else means <= obs + tol))
    return (hits + extra) / (len(signs) + extra)


def within_seed_correlation(d: np.ndarray) -> float:
    """Intraclass correlation of the differences of cells within a seed: ``d`` is cells x seeds, complete.

    The two-way layout without replication, d_cs = mu + cell_c + seed_s + e_cs,
    gives MS_seed = C sum_s (d_.s - d_..)^2 / (S - 1) and MS_err = sum (d_cs -
    d_c. - d_.s + d_..)^2 / ((C - 1)(S - 1)); the correlation of two cells'
    differences of the same seed is (MS_seed - MS_err) / (MS_seed + (C - 1)
    MS_err). Near 0: cells behave as independent; near 1: a seed moves all its
    cells together (then the seed is the unit). NaN below 2 cells or 2 seeds.
    """
    d = np.asarray(d, dtype=float)
    if d.ndim != 2 or d.shape[0] < 2 or d.shape[1] < 2 or not np.isfinite(d).all():
        return math.nan
    c, s = d.shape
    grand = d.mean()
    cell, seed = d.mean(axis=1, keepdims=True), d.mean(axis=0, keepdims=True)
    ms_seed = c * float(((seed - grand) ** 2).sum()) / (s - 1)
    ms_err = float(((d - cell - seed + grand) ** 2).sum()) / ((c - 1) * (s - 1))
    den = ms_seed + (c - 1) * ms_err
    return (ms_seed - ms_err) / den if den > 0 else math.nan


def one_sided_t_p(effect: float, sd: float, n: int, boundary: float, alternative: str) -> float:
    """p of the one-sided t test for a sample of ``n`` differences with this mean and sd (sd 0: the sign decides)."""
    from scipy import stats

    if n < 2 or not (math.isfinite(effect) and math.isfinite(sd)):
        return math.nan
    x = (effect - boundary) * (1 if alternative == "greater" else -1)
    if sd <= 0:
        return 0.0 if x > 0 else (0.5 if x == 0 else 1.0)
    return float(stats.t.sf(x / (sd / math.sqrt(n)), n - 1))


@dataclass(frozen=True)
class EffectStats:
    """Our effect of one claim on its n paired units (seeds) and its uncertainty (docs/CLAIMS.md)."""

    n: int
    estimate: float
    t_low: float
    t_high: float
    boot_low: float
    boot_high: float
    p_t: float
    p_t_against: float
    p_flip: float
    p_flip_against: float
    mean_a: float
    mean_b: float
    sd: float  # sd of the paired differences (effect unit for differences, points for relative effects)

    @property
    def ci(self) -> tuple[float, float]:
        """The 95 % interval shown: the paired t interval (delta method for a relative effect)."""
        return self.t_low, self.t_high

    @property
    def p_for(self) -> float:
        return self.p_t

    @property
    def p_against(self) -> float:
        return self.p_t_against


def effect_stats(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *, effect: str = "difference",
                 alternative: str = "greater", boundary: float = 0.0, n_resamples: int = N_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED, level: float = LEVEL) -> EffectStats:
    """Effect, intervals and the one-sided paired tests of paired values ``a``, ``b`` (arrays of n).

    The tests are on the differences d = a - b against ``boundary``: the t test
    (the verdict's) and the sign-flip permutation p (the robustness check).
    For a relative effect mean(a)/mean(b) - 1 > 0 exactly when mean(d) > 0, so
    they test the same ordering. ``alternative`` is the claimed side.
    """
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
    against = "less" if alternative == "greater" else "greater"
    return EffectStats(
        n=n, estimate=est, t_low=t_lo, t_high=t_hi, boot_low=boot[0], boot_high=boot[1],
        p_t=t_test(d, boundary, alternative), p_t_against=t_test(d, boundary, against),
        p_flip=sign_flip_p(d, boundary, alternative, seed=seed),
        p_flip_against=sign_flip_p(d, boundary, against, seed=seed),
        mean_a=float(a.mean()) if n else math.nan, mean_b=float(b.mean()) if n else math.nan,
        sd=float(d.std(ddof=1)) if n > 1 else math.nan)
