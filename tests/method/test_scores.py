"""Tests for firm_bench/method/scores.py: every score against a slow float64 reference."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from sklearn.svm import OneClassSVM

from firm_bench.core.facts.method import score_family
from firm_bench.core.errors import UnknownNameError
from firm_bench.method.metrics import auroc
from firm_bench.method.scores import (
    SCORE_FAMILIES,
    SCORES,
    FeatureCache,
    compute_score,
    kde_gamma,
    knn_mean_similarity,
    score_names,
)

A, C, NB, NT, D = 4, 3, 20, 15, 8
ANGLES = (0, 90, 180, 270)


def make_cache(seed: int = 0, crops: bool = True) -> FeatureCache:
    g = torch.Generator().manual_seed(seed)
    scale = lambda *s: torch.rand(*s, 1, generator=g) * 3 + 0.5  # noqa: E731 - varied norms
    bank = torch.randn(A, NB, D, generator=g) * scale(A, NB)
    test = torch.randn(A, NT, D, generator=g) * scale(A, NT)
    test_crops = torch.randn(A, C, NT, D, generator=g) * scale(A, C, NT) if crops else None
    targets = torch.tensor([1, 0] * (NT // 2) + [1] * (NT % 2), dtype=torch.int64)
    return FeatureCache(ANGLES, bank, test, test_crops, targets)


# --------------------------------------------------------------------------- #
# Brute-force references: numpy float64, one query at a time
# --------------------------------------------------------------------------- #
def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


def ref_cos(bank, queries, k):
    out = []
    for q in queries:
        sims = sorted((float(unit(q) @ unit(b)) for b in bank), reverse=True)
        out.append(sum(sims[:k]) / k)
    return np.array(out)


def ref_cos_norm(bank, queries, k):
    return ref_cos(bank, queries, k) * np.array([np.linalg.norm(q) for q in queries])


def ref_center(bank, queries, k):
    c = unit(np.mean([unit(b) for b in bank], axis=0))
    return np.array([unit(q) @ c for q in queries])


def ref_kde(bank, queries, k):
    bn = np.array([unit(b) for b in bank])
    gamma = 20.0 / (np.var(bn) * bn.shape[1])
    out = []
    for q in queries:
        e = [gamma * float(unit(q) @ b) for b in bn]
        m = max(e)
        out.append((m + math.log(sum(math.exp(x - m) for x in e))) / gamma)
    return np.array(out)


def ref_ocsvm(bank, queries, k):
    bn = np.array([unit(b) for b in bank])
    gamma = 10.0 / (np.var(bn) * bn.shape[1])
    clf = OneClassSVM(kernel="rbf", gamma=gamma).fit(bn)
    return clf.decision_function(np.array([unit(q) for q in queries]))


def ref_locsvm(bank, queries, k):
    return OneClassSVM(kernel="linear").fit(bank).decision_function(queries)


def ref_view(base, cache: FeatureCache, view: str, k: int) -> np.ndarray:
    bank = cache.bank.double().numpy()
    test = cache.test.double().numpy()
    if view == "single":
        return base(bank[0], test[0], k)
    if view == "rot":
        return np.mean([base(bank[a], test[a], k) for a in range(len(cache.angles))], axis=0)
    crops = cache.test_crops.double().numpy()
    per_angle_crop = [base(bank[a], crops[a, c], k) for a in range(crops.shape[0]) for c in range(crops.shape[1])]
    return np.mean(per_angle_crop, axis=0)


# name -> (reference base, view). A newly registered score must be added here.
REFERENCE = {
    "cos": (ref_cos, "single"),
    "cos_norm": (ref_cos_norm, "single"),
    "rot": (ref_cos, "rot"),
    "rot_norm": (ref_cos_norm, "rot"),
    "ens": (ref_cos, "ens"),
    "ens_norm": (ref_cos_norm, "ens"),
    "center": (ref_center, "single"),
    "kde": (ref_kde, "single"),
    "kde_rot": (ref_kde, "rot"),
    "kde_ens": (ref_kde, "ens"),
    "ocsvm": (ref_ocsvm, "single"),
    "ocsvm_rot": (ref_ocsvm, "rot"),
    "ocsvm_ens": (ref_ocsvm, "ens"),
    "locsvm": (ref_locsvm, "single"),
    "locsvm_rot": (ref_locsvm, "rot"),
    "locsvm_ens": (ref_locsvm, "ens"),
}


@pytest.fixture(scope="module")
def cache() -> FeatureCache:
    return make_cache(0)


@pytest.mark.parametrize("name", score_names())
@pytest.mark.parametrize("k", [1, 5])
def test_score_matches_reference(cache, name, k):
    assert name in REFERENCE, f"score {name!r} has no brute-force reference in tests/test_scores.py"
    base, view = REFERENCE[name]
    got = compute_score(name, cache, k=k)
    assert got.dtype == np.float64 and got.shape == (NT,)
    np.testing.assert_allclose(got, ref_view(base, cache, view, k), rtol=1e-5, atol=1e-5)


def test_every_reference_is_registered():
    assert sorted(REFERENCE) == sorted(score_names())


@pytest.mark.parametrize("name", score_names())
def test_score_doc_family_and_device(cache, name):
    fn = SCORES.get(name)
    assert fn.__doc__ and "higher = more normal" in fn.__doc__
    assert score_family(name) == SCORE_FAMILIES[name]
    np.testing.assert_allclose(fn(cache, k=3, device="cpu"), fn(cache, k=3), rtol=1e-6, atol=1e-6)


def test_families():
    fams = {n: score_family(n) for n in score_names()}
    assert {n for n, f in fams.items() if f == "knn"} == {"cos", "cos_norm", "rot", "rot_norm", "ens", "ens_norm"}
    assert set(fams.values()) == {"knn", "center", "kde", "ocsvm", "locsvm"}
    with pytest.raises(UnknownNameError, match="valid: cos"):
        score_family("cosine")
    with pytest.raises(UnknownNameError, match="unknown score 'cosine'"):
        compute_score("cosine", make_cache(1))


@pytest.mark.parametrize("name", [n for n in score_names() if n.endswith("_ens") or n.startswith("ens")])
def test_ens_without_crops_is_a_clear_error(name):
    with pytest.raises(ValueError, match=r"no crops.*firm-bench features.*crops > 0"):
        compute_score(name, make_cache(2, crops=False))


# --------------------------------------------------------------------------- #
# k-NN
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("chunk_size", [1, 4, NT, NT + 1, 4096])
@pytest.mark.parametrize("k", [1, 5])
def test_knn_mean_similarity_chunks(chunk_size, k):
    g = torch.Generator().manual_seed(3)
    q = torch.nn.functional.normalize(torch.randn(NT, D, generator=g), dim=1)
    b = torch.nn.functional.normalize(torch.randn(NB, D, generator=g), dim=1)
    got = knn_mean_similarity(q, b, k, chunk_size=chunk_size)
    assert got.dtype == torch.float32 and got.shape == (NT,)
    ref = ref_cos(b.double().numpy(), q.double().numpy(), k)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bank_chunk_size", [1, 3, 7, NB - 1, NB, NB + 1])
@pytest.mark.parametrize("k", [1, 2, 5, NB])
def test_knn_mean_similarity_bank_chunks(bank_chunk_size, k):
    """Tiling the bank (chunk boundaries, k larger than a chunk, a last chunk
    shorter than k) gives the brute-force k largest similarities; query chunks
    of 4 leave a partial last one (NT = 15)."""
    g = torch.Generator().manual_seed(5)
    q = torch.nn.functional.normalize(torch.randn(NT, D, generator=g), dim=1)
    b = torch.nn.functional.normalize(torch.randn(NB, D, generator=g), dim=1)
    got = knn_mean_similarity(q, b, k, chunk_size=4, bank_chunk_size=bank_chunk_size)
    assert got.dtype == torch.float32 and got.shape == (NT,)
    ref = ref_cos(b.double().numpy(), q.double().numpy(), k)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-6)


def test_knn_mean_similarity_tiled_equals_full_matrix_topk():
    """Larger random data, several query and bank chunks: the same values as one
    full similarity matrix, sorted; ties across chunk boundaries (duplicated
    bank rows) counted once per copy, as a full sort counts them."""
    g = torch.Generator().manual_seed(6)
    q = torch.nn.functional.normalize(torch.randn(300, 16, generator=g), dim=1)
    b = torch.nn.functional.normalize(torch.randn(500, 16, generator=g), dim=1)
    b = torch.cat([b, b[:50]])  # each of the first 50 rows twice, in different bank chunks
    full = (q.double() @ b.double().t()).sort(dim=1, descending=True).values
    for k in (1, 5, 10):
        got = knn_mean_similarity(q, b, k, chunk_size=64, bank_chunk_size=128)
        np.testing.assert_allclose(got.numpy(), full[:, :k].mean(dim=1).numpy(), rtol=1e-5, atol=1e-6)
    # a query equal to a duplicated bank row has two neighbours at similarity 1
    got = knn_mean_similarity(b[:3], b, 2, chunk_size=2, bank_chunk_size=128)
    np.testing.assert_allclose(got.numpy(), 1.0, rtol=0, atol=1e-6)


def test_knn_no_queries():
    assert knn_mean_similarity(torch.empty(0, D), torch.randn(4, D), 2).shape == (0,)


def test_knn_bad_k_and_shapes():
    q, b = torch.randn(3, D), torch.randn(4, D)
    with pytest.raises(ValueError, match="k=5 must be between 1 and the bank size"):
        knn_mean_similarity(q, b, 5)
    with pytest.raises(ValueError, match="k=0"):
        knn_mean_similarity(q, b, 0)
    with pytest.raises(ValueError, match="feature dims differ"):
        knn_mean_similarity(torch.randn(3, D + 1), b, 1)
    with pytest.raises(ValueError, match="bank_chunk_size must be >= 1, got 4 and 0"):
        knn_mean_similarity(q, b, 1, chunk_size=4, bank_chunk_size=0)
    with pytest.raises(ValueError, match="k=21"):
        compute_score("cos", make_cache(4), k=NB + 1)


# --------------------------------------------------------------------------- #
# Sanity
# --------------------------------------------------------------------------- #
def test_test_point_identical_to_bank_point_scores_one():
    c = make_cache(5)
    test = c.test.clone()
    test[:, 3] = c.bank[:, 7] * 2.5  # same direction, other norm
    c2 = FeatureCache(c.angles, c.bank, test, c.test_crops, c.targets)
    assert compute_score("cos", c2, k=1)[3] == pytest.approx(1.0, abs=1e-6)
    assert compute_score("rot", c2, k=1)[3] == pytest.approx(1.0, abs=1e-6)
    assert compute_score("cos_norm", c2, k=1)[3] == pytest.approx(2.5 * c.bank[0, 7].norm().item(), rel=1e-5)


def separable_cache(seed: int = 6) -> FeatureCache:
    """Per angle a cluster mu_a: bank and normal test points near mu_a, anomalies near -mu_a."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.nn.functional.normalize(torch.randn(A, 1, D, generator=g), dim=-1) * 3
    noise = lambda *s: 0.3 * torch.randn(*s, D, generator=g)  # noqa: E731
    targets = torch.tensor([1] * 8 + [0] * 7, dtype=torch.int64)
    sign = torch.where(targets == 1, 1.0, -1.0)[None, :, None]
    test = sign * mu + noise(A, NT)
    crops = (sign * mu)[:, None] + noise(A, C, NT)
    return FeatureCache(ANGLES, mu + noise(A, NB), test, crops, targets)


@pytest.mark.parametrize("name", score_names())
def test_near_points_score_higher_than_far_ones(name):
    c = separable_cache()
    assert auroc(compute_score(name, c, k=5), c.targets.numpy()) == 1.0


def test_kde_gamma_and_limit(cache):
    bn = torch.nn.functional.normalize(cache.bank[0], dim=1)
    bn64 = bn.double().numpy()
    assert kde_gamma(bn) == pytest.approx(20.0 / (np.var(bn64) * D), rel=1e-9)
    assert kde_gamma(bn, 10.0) == pytest.approx(10.0 / (np.var(bn64) * D), rel=1e-9)
    # logsumexp bound: max sim <= kde <= max sim + log(Nb) / gamma
    kde = compute_score("kde", cache)
    max_sim = compute_score("cos", cache, k=1)
    gamma = kde_gamma(bn)
    assert np.all(kde >= max_sim - 1e-6) and np.all(kde <= max_sim + math.log(NB) / gamma + 1e-6)
    # near-uniform bank directions -> tiny element variance -> huge gamma -> kde ~ max similarity
    g = torch.Generator().manual_seed(7)
    bank = torch.ones(A, NB, D) + 0.01 * torch.randn(A, NB, D, generator=g)
    tight = FeatureCache(ANGLES, bank, cache.test, None, cache.targets)
    big_gamma = kde_gamma(torch.nn.functional.normalize(bank[0], dim=1))
    assert math.log(NB) / big_gamma < 1e-3
    np.testing.assert_allclose(compute_score("kde", tight), compute_score("cos", tight, k=1), atol=1e-3)


def test_svms_match_sklearn_fitted_directly(cache):
    bank = cache.bank[0].double().numpy()
    test = cache.test[0].double().numpy()
    bn = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    tn = test / np.linalg.norm(test, axis=1, keepdims=True)
    rbf = OneClassSVM(kernel="rbf", gamma=10.0 / (np.var(bn) * D), nu=0.5).fit(bn)
    np.testing.assert_allclose(compute_score("ocsvm", cache), rbf.decision_function(tn), atol=1e-5)
    lin = OneClassSVM(kernel="linear").fit(bank)
    np.testing.assert_allclose(compute_score("locsvm", cache), lin.decision_function(test), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- #
# FeatureCache
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("crops", [True, False])
def test_cache_save_load_round_trip(tmp_path, crops):
    c = make_cache(8, crops=crops)
    path = tmp_path / "features" / "test.pt"
    c.save(path)
    assert sorted(os.listdir(path.parent)) == ["test.pt", "test.pt.sha256"]  # its checksum record; no temp file
    back = FeatureCache.load(path)
    assert back.angles == c.angles
    for f in ("bank", "test", "targets"):
        assert torch.equal(getattr(back, f), getattr(c, f))
    assert (back.test_crops is None) == (not crops)
    if crops:
        assert torch.equal(back.test_crops, c.test_crops)
    assert back.n_crops == (C if crops else 0)
    np.testing.assert_array_equal(compute_score("rot", back), compute_score("rot", c))


def test_cache_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "f.pt"
    make_cache(9).save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        make_cache(10).save(path)
    assert sorted(os.listdir(tmp_path)) == ["f.pt", "f.pt.sha256"] and path.read_bytes() == before
    assert FeatureCache.load(path).n_test == make_cache(9).n_test  # its record still verifies it


def test_cache_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="firm-bench features"):
        FeatureCache.load(tmp_path / "missing.pt")
    torch.save({"bank": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a firm-bench feature cache"):
        FeatureCache.load(tmp_path / "other.pt")


def _replace(c: FeatureCache, **kw) -> dict:
    fields = dict(angles=c.angles, bank=c.bank, test=c.test, test_crops=c.test_crops, targets=c.targets)
    fields.update(kw)
    return fields


@pytest.mark.parametrize(
    "field, change",
    [
        ("angles", dict(angles=(90, 0, 180, 270))),
        ("bank", dict(angles=(0, 90, 180))),  # 4 angles of features, 3 named
        ("angles", dict(angles=(0, 0, 180, 270))),
        ("bank", dict(bank=torch.zeros(A, NB))),
        ("bank", dict(bank=torch.zeros(A, NB, D, dtype=torch.int64))),
        ("test", dict(test=torch.zeros(A, NT, D + 1))),
        ("test", dict(test=torch.zeros(A - 1, NT, D))),
        ("test_crops", dict(test_crops=torch.zeros(A, C, NT + 1, D))),
        ("test_crops", dict(test_crops=torch.zeros(A, NT, D))),
        ("targets", dict(targets=torch.ones(NT + 1, dtype=torch.int64))),
        ("targets", dict(targets=torch.ones(NT, dtype=torch.int32))),
        ("targets", dict(targets=torch.full((NT,), 2, dtype=torch.int64))),
    ],
)
def test_cache_validate_names_the_field(field, change):
    with pytest.raises(ValueError, match=f"FeatureCache.{field}"):
        FeatureCache(**_replace(make_cache(11), **change))
