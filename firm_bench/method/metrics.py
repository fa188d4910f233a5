"""Evaluation metrics: AUROC, AULC and mean +- std over seeds (docs/METHOD.md "Metrics").

Conventions: scores are higher = more normal, targets are 1 = normal (the
positive class), 0 = anomalous.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    pass

__all__ = ["aulc", "auroc", "mean_std"]


def auroc(scores: Sequence[float] | np.ndarray, targets: Sequence[int] | np.ndarray) -> float:
    """Area under the ROC curve with normal (target 1) as the positive class.

    scores:  (N,) higher = more normal.  targets: (N,) 1 = normal, 0 = anomalous.
    AUROC = P(score of a random normal > score of a random anomaly), ties 1/2
    (``sklearn.metrics.roc_auc_score(targets, scores)``). Scores that rank every
    normal sample above every anomaly give 1.0.
    """
    from sklearn.metrics import roc_auc_score

    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(targets)
    if s.ndim != 1 or t.ndim != 1 or s.shape != t.shape:
        raise ValueError(f"scores and targets must be 1-D of equal length, got {s.shape} and {t.shape}")
    bad_t = int(np.sum((t != 0) & (t != 1)))
    if bad_t:
        raise ValueError(f"targets must be 1 (normal) or 0 (anomalous); {bad_t} entries are neither")
    n_normal = int(np.sum(t == 1))
    if n_normal == 0 or n_normal == t.size:
        raise ValueError(
            f"AUROC needs both classes, but targets hold only {'normal (1)' if n_normal else 'anomalous (0)'} "
            f"samples ({t.size} in total); check the test split"
        )
    bad_s = int(np.sum(~np.isfinite(s)))
    if bad_s:
        raise ValueError(f"{bad_s} of {s.size} scores are NaN or infinite; AUROC is undefined")
    return float(roc_auc_score(t.astype(np.int64), s))


def aulc(aurocs: Sequence[float] | np.ndarray) -> float:
    """Area under the learning curve (AUROC vs training fraction), in [0, 1] like AUROC.

    The n evaluations (every ``eval_every`` epochs) are placed at the training
    fractions x = linspace(0, 1, n) and integrated with Simpson's rule
    (``scipy.integrate.simpson``), as the reference code's ``integrate_auc``
    did. A constant curve c gives c; Simpson is exact for polynomials up to
    degree 3 when n is odd (scipy handles an even n with a corrected last
    interval). Unlike the reference code, n = 1 is an error (one point has no
    area); at least 2 evaluations are needed.
    """
    from scipy.integrate import simpson

    y = np.asarray(aurocs, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"aurocs must be a 1-D sequence, got shape {y.shape}")
    if y.size < 2:
        raise ValueError(
            f"AULC needs at least 2 AUROC evaluations along training, got {y.size}; "
            "evaluate more often (eval_every) or train longer"
        )
    bad = int(np.sum(~np.isfinite(y)))
    if bad:
        raise ValueError(f"{bad} of {y.size} AUROC values are NaN or infinite")
    return float(simpson(y, x=np.linspace(0.0, 1.0, y.size)))


def mean_std(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) over seeds.

    The std of a single value is undefined with ddof=1, so n == 1 gives
    (value, nan); pandas' ``std`` agrees. Empty or
    non-finite input raises ValueError.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("mean_std needs at least one value")
    bad = int(np.sum(~np.isfinite(v)))
    if bad:
        raise ValueError(f"{bad} of {v.size} values are NaN or infinite")
    std = float(np.std(v, ddof=1)) if v.size > 1 else float("nan")
    return float(np.mean(v)), std
