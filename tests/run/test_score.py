"""run.score: a run scored from hand-made feature caches: the AUROC of each score against brute force and sklearn,
the untrained baseline beside it, failures recorded with a reason and no number, metrics.json written."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from firm_bench.core import config
from firm_bench.core import rundir as runs
from firm_bench.method.scores import FeatureCache
from firm_bench.run.score import score_run


def _cache(seed, n_bank=40, n_normal=30, n_anomalous=30, dim=8, shift=2.0):
    """Normal features near +e0, anomalous near -e0 (a separable cache when shift is large)."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.zeros(dim)
    centre[0] = shift
    bank = torch.randn(1, n_bank, dim, generator=g) + centre
    test = torch.cat([torch.randn(1, n_normal, dim, generator=g) + centre,
                      torch.randn(1, n_anomalous, dim, generator=g) - centre], dim=1)
    targets = torch.cat([torch.ones(n_normal), torch.zeros(n_anomalous)]).long()
    return FeatureCache(angles=(0,), bank=bank, test=test, test_crops=None, targets=targets)


def _knn_cos(cache, k):
    """Brute force: the mean cosine similarity of each test feature to its k most similar bank features."""
    bank = torch.nn.functional.normalize(cache.bank[0].double(), dim=1).numpy()
    test = torch.nn.functional.normalize(cache.test[0].double(), dim=1).numpy()
    out = []
    for q in test:
        sims = sorted((float(q @ b) for b in bank), reverse=True)
        out.append(np.mean(sims[:k]))
    return np.array(out)


def _scored_run(tmp_path, trained, untrained=None, state="ok", reason=None):
    runs.atomic_write_json(runs.meta_path(tmp_path), {"state": state, "reason": reason, "checkpoint": "last",
                                                       "epoch": 3, "untrained": untrained is not None})
    if state == "ok":
        trained.save(runs.cache_path(tmp_path))
        if untrained is not None:
            untrained.save(runs.cache_path(tmp_path, model=runs.UNTRAINED))
    return config.resolve(preset="smoke")


@pytest.mark.parametrize("k", [1, 5])
def test_cos_auroc_equals_brute_force_and_the_untrained_baseline_is_beside_it(tmp_path, k):
    trained, untrained = _cache(0), _cache(1, shift=0.1)
    cfg = _scored_run(tmp_path, trained, untrained)
    records = score_run(cfg, tmp_path, names=["cos"], ks=[k])
    rec = records[f"cos_k{k}"]
    targets = trained.targets.numpy()
    assert rec["status"] == "ok" and rec["n_test"] == 60 and rec["n_normal"] == 30
    assert rec["auroc"] == pytest.approx(roc_auc_score(targets, _knn_cos(trained, k)), abs=1e-9)
    assert rec["untrained"]["auroc"] == pytest.approx(roc_auc_score(targets, _knn_cos(untrained, k)), abs=1e-9)
    assert rec["untrained"]["auroc"] < rec["auroc"]
    assert rec["checkpoint"] == "last" and rec["epoch"] == 3
    assert runs.read_json(runs.score_path(tmp_path, "test", "cos", k)) == rec
    metrics = runs.read_json(tmp_path / runs.METRICS_FILE)
    assert metrics["scores"][f"cos_k{k}"]["auroc"] == rec["auroc"]
    assert metrics["scores"][f"cos_k{k}"]["untrained_auroc"] == rec["untrained"]["auroc"]


def test_non_finite_features_fail_the_score_with_a_reason(tmp_path):
    bad = _cache(0)
    bad.test[0, 3] = float("nan")
    cfg = _scored_run(tmp_path, bad)
    rec = score_run(cfg, tmp_path, names=["cos"], ks=[5])["cos_k5"]
    assert rec["status"] == "failed" and rec["auroc"] is None and "non-finite" in rec["reason"]


def test_failed_features_give_failed_scores_naming_why(tmp_path):
    cfg = _scored_run(tmp_path, None, state="failed", reason="features are NaN after training")
    records = score_run(cfg, tmp_path, names=["cos", "center"], ks=[5])
    assert {r["status"] for r in records.values()} == {"failed"}
    assert all(r["reason"] == "features are NaN after training" and r["auroc"] is None for r in records.values())
    assert "untrained" not in records["center"]


def test_a_missing_untrained_cache_says_how_to_make_it(tmp_path):
    cfg = _scored_run(tmp_path, _cache(0))
    runs.atomic_write_json(runs.meta_path(tmp_path), {"state": "ok", "untrained": True})  # claims one, none on disk
    rec = score_run(cfg, tmp_path, names=["center"])["center"]
    assert rec["status"] == "ok" and rec["untrained"]["status"] == "failed"
    assert "firm-bench features" in rec["untrained"]["reason"]


def test_scoring_without_features_says_which_command_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="firm-bench features .* --evalset test"):
        score_run(config.resolve(preset="smoke"), tmp_path)
