"""Anomaly scores computed from a cached set of encoder features (docs/METHOD.md "Scores").

Every score is **higher = more normal** and is computed from a ``FeatureCache``:
the raw (unnormalised) encoder features of the training (normal) images, the
"bank", and of the test images, each at every rotation angle, plus optionally
``C`` random resized crops of each test image at each angle. Scores never touch
a model, so a new score needs no retraining or re-extraction (OpenOOD style).

Each registered score is ``score(cache, *, k=5, device=None) -> np.ndarray``
of shape (Nt,), float64. It is one *base score* (a function of one bank and a
batch of query features, below) applied over one *view*:

  view    names            queries, per angle a               ensemble
  single  cos, kde, ...    test[0] vs bank[0]                 none
  rot     *_rot, rot*      test[a] vs bank[a], all angles     mean over angles
  ens     *_ens, ens*      test_crops[a, c] vs bank[a]        mean over angles and crops

The ``ens`` view uses the crops only (not the uncropped test view), as the
reference code did; the bank gets no crops (docs/METHOD.md). Within one angle the
base score sees one bank, so per-bank quantities (KDE gamma, a fitted
OC-SVM) come from that angle's bank.

Base scores (b = bank row, q = query; ``^`` = L2-normalised; D = feature dim):
  cos      mean of the k largest  q^ . b^                     (k-NN cosine)
  cos_norm cos * ||q||                                         (raw query norm)
  center   q^ . c^,  c = mean_b b^                             (centre cosine)
  kde      logsumexp_b(gamma q^ . b^) / gamma,  gamma = 20 / (var(B^) D)
  ocsvm    OneClassSVM(rbf, gamma = 10 / (var(B^) D), nu=0.5).fit(B^).decision_function(q^)
  locsvm   OneClassSVM(linear, nu=0.5).fit(B).decision_function(q)  (unnormalised)
var(B^) is the variance over all elements of the normalised bank (numpy's
``np.var``, ddof=0), as in the reference code.

Families (one workflow job each): ``knn`` (cos*, rot*, ens*), ``center``,
``kde``, ``ocsvm``, ``locsvm``: ``SCORE_FAMILIES``, the scores' facts (``core/facts/method.py``).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from firm_bench.core.facts.method import SCORES as SCORE_FAMILIES
from firm_bench.core.registry import Registry

__all__ = [
    "FeatureCache",
    "SCORES",
    "SCORE_FAMILIES",
    "ScoreFn",
    "compute_score",
    "ensemble_score",
    "kde_gamma",
    "knn_mean_similarity",
    "score_names",
]

View = Literal["single", "rot", "ens"]
# base(bank (Nb, D), queries (Q, D), k) -> (Q,) float64; both raw features.
BaseScore = Callable[[Tensor, Tensor, int], np.ndarray]
ScoreFn = Callable[..., np.ndarray]

_CACHE_FORMAT = "firm_bench.FeatureCache"
_CACHE_VERSION = 1
_CACHE_FIELDS = ("angles", "bank", "test", "test_crops", "targets")


# --------------------------------------------------------------------------- #
# Feature cache
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class FeatureCache:
    """Raw encoder features of one run at one checkpoint, the input of every score.

    angles:     (A,) rotation angles in degrees; ``angles[0]`` must be 0.
    bank:       (A, Nb, D) float raw features of the training (normal) images at
                each angle (test transform, no crop).
    test:       (A, Nt, D) raw features of the test images at each angle.
    test_crops: (A, C, Nt, D) raw features of C random resized crops of each test
                image at each angle, or None when no crops were extracted.
    targets:    (Nt,) int64, 1 = normal, 0 = anomalous.

    The constructor validates shapes (``validate``), so a cache that exists is
    consistent.
    """

    angles: tuple[int, ...]
    bank: Tensor
    test: Tensor
    test_crops: Tensor | None
    targets: Tensor

    def __post_init__(self) -> None:
        object.__setattr__(self, "angles", tuple(int(a) for a in self.angles))
        self.validate()

    # -- shape helpers -------------------------------------------------------
    @property
    def n_angles(self) -> int:
        return len(self.angles)

    @property
    def n_bank(self) -> int:
        return int(self.bank.shape[1])

    @property
    def n_test(self) -> int:
        return int(self.test.shape[1])

    @property
    def n_crops(self) -> int:
        """C, the number of crops per test image and angle (0 without crops)."""
        return 0 if self.test_crops is None else int(self.test_crops.shape[1])

    @property
    def dim(self) -> int:
        return int(self.bank.shape[2])

    def validate(self) -> None:
        """Check that every field has the documented shape; ValueError names the field."""
        angles = self.angles
        if len(angles) == 0:
            raise ValueError("FeatureCache.angles is empty; expected e.g. (0, 90, 180, 270)")
        if angles[0] != 0:
            raise ValueError(f"FeatureCache.angles[0] must be 0 (the unrotated view), got {angles}")
        if len(set(angles)) != len(angles):
            raise ValueError(f"FeatureCache.angles has duplicates: {angles}")
        a = len(angles)

        def check(name: str, t: object, ndim: int, layout: str) -> Tensor:
            if not isinstance(t, Tensor):
                raise ValueError(f"FeatureCache.{name} must be a torch.Tensor {layout}, got {type(t).__name__}")
            if t.ndim != ndim:
                raise ValueError(f"FeatureCache.{name} must have shape {layout}, got {tuple(t.shape)}")
            return t

        bank = check("bank", self.bank, 3, "(A, Nb, D)")
        test = check("test", self.test, 3, "(A, Nt, D)")
        for name, t in (("bank", bank), ("test", test)):
            if not t.is_floating_point():
                raise ValueError(f"FeatureCache.{name} must be a float tensor, got {t.dtype}")
            if t.shape[0] != a:
                raise ValueError(f"FeatureCache.{name} has {t.shape[0]} angles in dim 0 but angles={angles} ({a})")
        if bank.shape[1] == 0:
            raise ValueError("FeatureCache.bank has no training features (Nb = 0)")
        if test.shape[2] != bank.shape[2]:
            raise ValueError(
                f"FeatureCache.test has feature dim {test.shape[2]} but bank has {bank.shape[2]}"
            )
        n_test, dim = test.shape[1], bank.shape[2]
        if self.test_crops is not None:
            crops = check("test_crops", self.test_crops, 4, "(A, C, Nt, D)")
            if not crops.is_floating_point():
                raise ValueError(f"FeatureCache.test_crops must be a float tensor, got {crops.dtype}")
            if crops.shape[0] != a or crops.shape[2] != n_test or crops.shape[3] != dim or crops.shape[1] == 0:
                raise ValueError(
                    f"FeatureCache.test_crops must have shape (A={a}, C>0, Nt={n_test}, D={dim}), "
                    f"got {tuple(crops.shape)}"
                )
        targets = check("targets", self.targets, 1, "(Nt,)")
        if targets.dtype != torch.int64:
            raise ValueError(f"FeatureCache.targets must be int64 (1 = normal, 0 = anomalous), got {targets.dtype}")
        if targets.shape[0] != n_test:
            raise ValueError(f"FeatureCache.targets has {targets.shape[0]} entries but test has Nt={n_test}")
        bad = ((targets != 0) & (targets != 1)).sum().item()
        if bad:
            raise ValueError(f"FeatureCache.targets must be 0/1 (1 = normal); {bad} entries are neither")

    # -- persistence ---------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the cache with ``torch.save`` atomically (temp file in the same dir + os.replace)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": _CACHE_FORMAT,
            "version": _CACHE_VERSION,
            "angles": list(self.angles),
            "bank": self.bank.detach().cpu().contiguous(),
            "test": self.test.detach().cpu().contiguous(),
            "test_crops": None if self.test_crops is None else self.test_crops.detach().cpu().contiguous(),
            "targets": self.targets.detach().cpu().contiguous(),
        }
        from firm_bench.core.rundir import atomic_torch_save

        atomic_torch_save(path, payload)  # with its checksum record, verified by load

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureCache:
        """Read a cache written by ``save`` (``torch.load(weights_only=True)``, on the CPU), its checksum
        verified (``rundir.torch_load``: a damaged cache raises DamagedFile naming it and what to do)."""
        from firm_bench.core.rundir import torch_load

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"feature cache {path} does not exist; run `firm-bench features` first")
        data = torch_load(path, map_location="cpu", weights_only=True)
        if not isinstance(data, dict) or data.get("format") != _CACHE_FORMAT:
            raise ValueError(f"{path} is not a firm-bench feature cache (no format={_CACHE_FORMAT!r} entry)")
        if data.get("version") != _CACHE_VERSION:
            raise ValueError(
                f"{path} has feature cache version {data.get('version')}, this code reads {_CACHE_VERSION}; "
                "re-run `firm-bench features`"
            )
        missing = [k for k in _CACHE_FIELDS if k not in data]
        if missing:
            raise ValueError(f"feature cache {path} lacks {', '.join(missing)}; re-run `firm-bench features`")
        try:
            return cls(**{k: data[k] for k in _CACHE_FIELDS})
        except ValueError as e:
            raise ValueError(f"feature cache {path}: {e}") from e


# --------------------------------------------------------------------------- #
# k-NN and small tensor helpers
# --------------------------------------------------------------------------- #
def knn_mean_similarity(
    queries: Tensor, bank: Tensor, k: int, chunk_size: int = 1024, bank_chunk_size: int = 4096
) -> Tensor:
    """Mean cosine similarity of each query to its k nearest bank features.

    queries: (Q, D), bank: (Nb, D), both already L2-normalised, on one device.
    Returns (Q,) float32 on that device: s_i = 1/k sum of the k largest q_i . b_j.

    Exact search (no approximate index), tiled so that memory stays bounded
    and cache-friendly whatever the bank size: for each chunk of
    ``chunk_size`` queries and each chunk of ``bank_chunk_size`` bank features
    (at least k), one float32 matrix product into a reused buffer (default
    1024 x 4096 x 4 B = 16 MiB) and that block's k largest similarities
    (``torch.topk``; ``amax`` for k = 1); the k largest of these candidates
    are the k largest over the whole bank, summed in the same (descending)
    order as one full (Q, Nb) matrix's ``topk`` would give them (so results
    match it up to the rounding of differently shaped matrix products).
    ``benchmarks/bench_knn.py`` times it against faiss's exact IndexFlatIP
    search (docs/SPEED.md).
    """
    if queries.ndim != 2 or bank.ndim != 2:
        raise ValueError(f"queries and bank must be 2-D (N, D), got {tuple(queries.shape)} and {tuple(bank.shape)}")
    if queries.shape[1] != bank.shape[1]:
        raise ValueError(f"feature dims differ: queries D={queries.shape[1]}, bank D={bank.shape[1]}")
    n_bank = bank.shape[0]
    if not 1 <= k <= n_bank:
        raise ValueError(f"k={k} must be between 1 and the bank size ({n_bank} features)")
    if chunk_size < 1 or bank_chunk_size < 1:
        raise ValueError(f"chunk_size and bank_chunk_size must be >= 1, got {chunk_size} and {bank_chunk_size}")
    n_queries, device = queries.shape[0], queries.device
    out = torch.empty(n_queries, dtype=torch.float32, device=device)
    if n_queries == 0:
        return out
    bank = bank.float()
    q_rows = min(chunk_size, n_queries)
    b_rows = min(max(bank_chunk_size, k), n_bank)  # every bank chunk but the last holds >= k features
    starts = range(0, n_bank, b_rows)
    widths = [min(k, n_bank - b) for b in starts]  # candidates each bank chunk contributes
    offsets = [0, *itertools.accumulate(widths)][:-1]  # column of each chunk's candidates
    block_buf = torch.empty(q_rows * b_rows, dtype=torch.float32, device=device)
    candidates = torch.empty(q_rows, sum(widths), dtype=torch.float32, device=device)
    for q0 in range(0, n_queries, q_rows):
        q = queries[q0 : q0 + q_rows].float()
        m = q.shape[0]
        for b0, width, off in zip(starts, widths, offsets):
            b = bank[b0 : b0 + b_rows]
            block = block_buf[: m * b.shape[0]].view(m, b.shape[0])  # contiguous, reused
            torch.mm(q, b.t(), out=block)
            best = block.amax(dim=1, keepdim=True) if k == 1 else block.topk(width, dim=1).values
            candidates[:m, off : off + width] = best
        cand = candidates[:m]
        out[q0 : q0 + m] = cand.amax(dim=1) if k == 1 else cand.topk(k, dim=1).values.mean(dim=1)
    return out


def _normalize(x: Tensor) -> Tensor:
    return F.normalize(x.float(), dim=-1)


def _to_numpy(x: Tensor) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.float64)


def _bank_variance(bank_n: Tensor) -> float:
    """np.var of all elements of the normalised bank (ddof=0); must be > 0."""
    var = float(bank_n.double().var(correction=0))
    if not var > 0:
        raise ValueError(
            "the normalised bank features have zero variance, so gamma = c / (var * D) is undefined; "
            "check the feature extraction (are all bank features identical?)"
        )
    return var


def kde_gamma(bank_n: Tensor, factor: float = 20.0) -> float:
    """gamma = factor / (var(bank_n) * D), var over all elements (ddof=0).

    factor 20 is the KDE bandwidth, factor 10 the RBF OC-SVM's (reference code).
    """
    return factor / (_bank_variance(bank_n) * bank_n.shape[1])


# --------------------------------------------------------------------------- #
# Base scores: (bank (Nb, D) raw, queries (Q, D) raw, k) -> (Q,) float64
# --------------------------------------------------------------------------- #
def _base_cos(bank: Tensor, queries: Tensor, k: int) -> np.ndarray:
    return _to_numpy(knn_mean_similarity(_normalize(queries), _normalize(bank), k))


def _base_cos_norm(bank: Tensor, queries: Tensor, k: int) -> np.ndarray:
    sim = knn_mean_similarity(_normalize(queries), _normalize(bank), k)
    return _to_numpy(sim) * _to_numpy(queries.double().norm(dim=1))


def _base_center(bank: Tensor, queries: Tensor, k: int) -> np.ndarray:
    center = F.normalize(_normalize(bank).mean(dim=0), dim=0)
    return _to_numpy(_normalize(queries) @ center)


def _base_kde(bank: Tensor, queries: Tensor, k: int, chunk_size: int = 1024) -> np.ndarray:
    bank_n = _normalize(bank)
    gamma = kde_gamma(bank_n, 20.0)
    q = _normalize(queries)
    out = torch.empty(q.shape[0], dtype=torch.float64, device=q.device)
    for start in range(0, q.shape[0], chunk_size):
        sim = q[start : start + chunk_size] @ bank_n.t()  # float32 matmul
        # logsumexp subtracts the row max, so float32 is accurate here (and ~4x faster than float64)
        out[start : start + chunk_size] = (torch.logsumexp(gamma * sim, dim=1) / gamma).double()
    return _to_numpy(out)


def _base_ocsvm(bank: Tensor, queries: Tensor, k: int) -> np.ndarray:
    from sklearn.svm import OneClassSVM

    bank_n = _normalize(bank)
    gamma = kde_gamma(bank_n, 10.0)  # same form as the KDE bandwidth, factor 10
    clf = OneClassSVM(kernel="rbf", gamma=gamma, nu=0.5).fit(_to_numpy(bank_n))
    return np.asarray(clf.decision_function(_to_numpy(_normalize(queries))), dtype=np.float64)


def _base_locsvm(bank: Tensor, queries: Tensor, k: int) -> np.ndarray:
    from sklearn.svm import OneClassSVM

    clf = OneClassSVM(kernel="linear", nu=0.5).fit(_to_numpy(bank))
    return np.asarray(clf.decision_function(_to_numpy(queries)), dtype=np.float64)


# --------------------------------------------------------------------------- #
# Ensembling over angles and crops (written once for every family)
# --------------------------------------------------------------------------- #
def ensemble_score(
    base: BaseScore, cache: FeatureCache, view: View, *, k: int = 5, device: torch.device | str | None = None
) -> np.ndarray:
    """Apply ``base`` over the angles (and crops) of ``view``; returns (Nt,) float64.

    single: base(bank[0], test[0]).
    rot:    1/A sum_a base(bank[a], test[a]).
    ens:    1/(A C) sum_a sum_c base(bank[a], test_crops[a, c])  (crops only).
    All crops of one angle go to ``base`` in one call, so a fitted model
    (OC-SVM) or per-bank constant (KDE gamma) is computed once per angle.
    ``device`` None keeps the cache's device.
    """
    cache.validate()
    if view == "single":
        angle_idx, queries = [0], [cache.test[0:1]]
    elif view == "rot":
        angle_idx = list(range(cache.n_angles))
        queries = [cache.test[a : a + 1] for a in angle_idx]
    elif view == "ens":
        if cache.test_crops is None:
            raise ValueError(
                "this score averages over test crops, but the feature cache has no crops (test_crops is None); "
                "extract them with `firm-bench features` with crops > 0 (the paper used 10)"
            )
        angle_idx = list(range(cache.n_angles))
        queries = [cache.test_crops[a] for a in angle_idx]
    else:
        raise ValueError(f"unknown view {view!r}; valid: single, rot, ens")

    total = np.zeros(cache.n_test, dtype=np.float64)
    for a, q in zip(angle_idx, queries):
        m, nt, d = q.shape
        bank = cache.bank[a].to(device) if device is not None else cache.bank[a]
        q = q.reshape(m * nt, d)
        q = q.to(device) if device is not None else q
        s = np.asarray(base(bank, q, k), dtype=np.float64)
        total += s.reshape(m, nt).mean(axis=0)
    return total / len(angle_idx)


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #
SCORES: Registry[ScoreFn] = Registry("score", facts=SCORE_FAMILIES)

_VIEW_DOC = {
    "single": "unrotated test features (angle 0) vs the angle-0 bank",
    "rot": "mean over angles a of the score of test[a] vs bank[a]",
    "ens": "mean over angles a and crops c of the score of test_crops[a, c] vs bank[a] "
    "(crops only, no uncropped view; needs a cache with crops)",
}

#: one line each, for ``firm-bench list scores`` (the docstring's first line); the details are _VIEW_DOC, _BASE_DOC
_VIEW_SUMMARY = {"single": "on the upright image", "rot": "averaged over the 4 rotations",
                 "ens": "averaged over the 4 rotations x the random test crops"}
_BASE_SUMMARY = {
    "cos": "k-NN cosine: mean cosine similarity to the k nearest training features",
    "cos_norm": "k-NN cosine times the test feature's norm",
    "center": "cosine similarity to the mean training feature",
    "kde": "Gaussian kernel density over all training features",
    "ocsvm": "RBF one-class SVM on the normalised training features",
    "locsvm": "linear one-class SVM on the raw training features",
}

_BASE_DOC = {
    "cos": "mean cosine similarity of q^ to its k nearest normalised bank features",
    "cos_norm": "(mean cosine similarity of q^ to its k nearest normalised bank features) * ||q|| (raw norm)",
    "center": "q^ . c^, c = mean of the normalised bank features (k unused)",
    "kde": "logsumexp_j(gamma q^ . b^_j) / gamma over all bank features, gamma = 20 / (var(B^) * D) (k unused)",
    "ocsvm": "OneClassSVM(rbf, gamma = 10 / (var(B^) * D), nu=0.5) fitted on the normalised bank, "
    "decision_function of q^ (k unused)",
    "locsvm": "OneClassSVM(linear, nu=0.5 = sklearn default, as the reference) fitted on the raw bank, "
    "decision_function of the raw q (k unused)",
}


def _register(name: str, base_name: str, base: BaseScore, view: View) -> None:
    family = SCORE_FAMILIES.get(name, "?")  # an undeclared name: the registry refuses it
    def score(cache: FeatureCache, *, k: int = 5, device: torch.device | str | None = None) -> np.ndarray:
        return ensemble_score(base, cache, view, k=k, device=device)

    score.__name__ = score.__qualname__ = f"score_{name}"
    score.__doc__ = (
        f"{_BASE_SUMMARY[base_name]}, {_VIEW_SUMMARY[view]} (family {family}; higher = more normal).\n\n"
        f"Score {name!r} (docs/METHOD.md \"Scores\").\n"
        f"base: {_BASE_DOC[base_name]}.\n"
        f"view: {_VIEW_DOC[view]}.\n"
        "Returns (Nt,) float64."
    )
    score.family = family  # type: ignore[attr-defined]
    score.view = view  # type: ignore[attr-defined]
    SCORES.add(name, score)


_SUFFIX: dict[View, str] = {"single": "", "rot": "_rot", "ens": "_ens"}

# k-NN cosine: the paper names them cos / rot / ens (+ _norm).
for _view, _prefix in (("single", "cos"), ("rot", "rot"), ("ens", "ens")):
    _register(_prefix, "cos", _base_cos, _view)
    _register(f"{_prefix}_norm", "cos_norm", _base_cos_norm, _view)
_register("center", "center", _base_center, "single")
for _family, _base in (("kde", _base_kde), ("ocsvm", _base_ocsvm), ("locsvm", _base_locsvm)):
    for _view, _suffix in _SUFFIX.items():
        _register(f"{_family}{_suffix}", _family, _base, _view)
del _view, _prefix, _family, _base, _suffix


def score_names() -> list[str]:
    """All registered score names, in registration order."""
    return SCORES.names()


def compute_score(
    name: str, cache: FeatureCache, k: int = 5, device: torch.device | str | None = None
) -> np.ndarray:
    """Score ``name`` of every test image in ``cache``: (Nt,) float64, higher = more normal."""
    return SCORES.get(name)(cache, k=k, device=device)
