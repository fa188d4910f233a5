"""Tests for firm_bench/method/metrics.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from firm_bench.method.metrics import aulc, auroc, mean_std


def test_auroc_matches_sklearn():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, 200)
    scores = rng.normal(size=200) + targets
    assert auroc(scores, targets) == pytest.approx(roc_auc_score(targets, scores))


def test_auroc_brute_force_pairs_with_ties():
    scores = np.array([0.1, 0.5, 0.5, 0.9, 0.3])
    targets = np.array([0, 1, 0, 1, 1])
    pairs = [(sn > sa) + 0.5 * (sn == sa) for sn in scores[targets == 1] for sa in scores[targets == 0]]
    assert auroc(scores, targets) == pytest.approx(np.mean(pairs))


def test_auroc_orientation_normal_is_positive():
    targets = np.array([1, 1, 1, 0, 0])
    normal_high = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    assert auroc(normal_high, targets) == 1.0
    assert auroc(-normal_high, targets) == 0.0


@pytest.mark.parametrize(
    "scores, targets, match",
    [
        ([0.1, 0.2], [1, 1], "only normal"),
        ([0.1, 0.2], [0, 0], "only anomalous"),
        ([0.1, np.nan, np.inf], [1, 0, 1], "2 of 3 scores are NaN or infinite"),
        ([0.1, 0.2], [1, 2], "1 entries are neither"),
        ([0.1, 0.2, 0.3], [1, 0], "equal length"),
    ],
)
def test_auroc_bad_input(scores, targets, match):
    with pytest.raises(ValueError, match=match):
        auroc(scores, targets)


@pytest.mark.parametrize("n", [2, 3, 4, 11, 200])
def test_aulc_constant_and_linear(n):
    assert aulc([0.83] * n) == pytest.approx(0.83)
    x = np.linspace(0, 1, n)
    assert aulc(0.6 + 0.3 * x) == pytest.approx(0.6 + 0.3 / 2)


@pytest.mark.parametrize("n", [3, 5, 21])
def test_aulc_quadratic_exact_for_odd_n(n):
    x = np.linspace(0, 1, n)
    assert aulc(x**2) == pytest.approx(1 / 3, abs=1e-12)
    assert aulc(0.5 + 0.2 * x - 0.1 * x**2) == pytest.approx(0.5 + 0.1 - 0.1 / 3, abs=1e-12)


def test_aulc_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        aulc([0.9])
    with pytest.raises(ValueError, match="at least 2"):
        aulc([])
    with pytest.raises(ValueError, match="NaN"):
        aulc([0.9, float("nan"), 0.8])


def test_mean_std():
    m, s = mean_std([0.8, 0.9, 1.0])
    assert m == pytest.approx(0.9) and s == pytest.approx(0.1)  # sample std, ddof=1
    m, s = mean_std([0.7])
    assert m == 0.7 and math.isnan(s)
    with pytest.raises(ValueError, match="at least one"):
        mean_std([])
    with pytest.raises(ValueError, match="NaN"):
        mean_std([0.5, float("nan")])
