"""Training end to end on the embedded data: train -> features -> scores, resume, failure."""

import dataclasses
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from firm_bench.core import config
from firm_bench.core import rundir as runs
from firm_bench.core.errors import TrainingFailed
from firm_bench.core.rundir import cache_path, read_curve
from firm_bench.datasets import load_run_data
from firm_bench.method.losses import get_loss
from firm_bench.method.schedules import SCHEDULES
from firm_bench.method.scores import FeatureCache
from firm_bench.records.metrics import recipe_labels
from firm_bench.run.features import extract_run_features
from firm_bench.run.score import score_run
from firm_bench.run.train import train
from firm_bench.run.training import build_training
from tests.helpers.engine import engine_of, one_step
from tests.run.conftest import STRAIGHT_EPOCHS, STRAIGHT_SETS

CPU = torch.device("cpu")


def smoke(**overrides):
    pairs = [f"{k}={v}" for k, v in overrides.items()]
    return config.resolve("smoke", overrides=["device=cpu", "threads=2", *pairs])


@pytest.mark.slow
def test_train_features_scores_end_to_end(tmp_path):
    cfg = smoke(**{"optim.epochs": 2})
    run = tmp_path / "run"
    result = train(cfg, run, progress=False)
    assert result.epochs == 2 and 0.0 <= result.final_auroc <= 1.0
    assert (run / "checkpoints" / "last.pt").exists() and (run / "checkpoints" / "best_test.pt").exists()
    assert runs.read_status(run)["state"] == "ok"
    assert [row["epoch"] for row in read_curve(run)] == [0, 1, 2]  # epoch 0: the untrained model (eval.at_start)
    assert config.load_yaml(run / "config.yaml") == cfg
    assert runs.read_json(run / "versions.json")["torch"] == torch.__version__

    extract_run_features(cfg, run)
    cache = FeatureCache.load(cache_path(run))
    n_test = 1000  # fmnist_mini: 100 test images per class
    assert cache.test.shape[:2] == (4, n_test) and cache.bank.shape[:2] == (4, 200)
    assert cache.test_crops.shape[:3] == (4, 2, n_test)
    assert int(cache.targets.sum()) == 100

    records = score_run(cfg, run)
    metrics = runs.read_json(run / "metrics.json")
    assert set(records) == set(metrics["scores"])
    assert set(metrics["scores"]) == {"cos_k1", "cos_k5", "cos_norm_k1", "cos_norm_k5", "rot_k1", "rot_k5",
                                      "ens_k1", "ens_k5", "center", "kde"}
    assert all(rec["status"] == "ok" and 0 <= rec["auroc"] <= 1 for rec in metrics["scores"].values())
    # the learning curve's last point is the cos score of the last checkpoint
    assert metrics["scores"]["cos_k5"]["auroc"] == pytest.approx(metrics["final_auroc"], abs=1e-6)
    assert metrics["recipe"]["checkpoint"] == "last" and metrics["recipe"]["schedule"] == "onecycle"
    assert metrics["recipe"]["precision"] == "fp32" and metrics["recipe"]["eval_zoom"] == 1.125
    # the untrained-encoder baseline: every score of the encoder at initialisation, from its own cache;
    # its cos equals the curve's epoch-0 point, which AULC leaves out (2 points after epoch 0)
    untrained = FeatureCache.load(cache_path(run, model=runs.UNTRAINED))
    assert untrained.test.shape == cache.test.shape and not torch.equal(untrained.test, cache.test)
    assert all(rec["untrained_auroc"] is not None and 0 <= rec["untrained_auroc"] <= 1
               for rec in metrics["scores"].values())
    assert metrics["scores"]["cos_k5"]["untrained_auroc"] == pytest.approx(read_curve(run)[0]["auroc"], abs=1e-6)
    assert metrics["untrained_curve_auroc"] == read_curve(run)[0]["auroc"] and metrics["curve_points"] == 2
    assert not list(run.rglob("*.tmp"))


def test_untrained_model_depends_on_seed_and_model_only():
    """The baseline is the seed's initial weights: the same for every loss and outlier source, not for another seed."""
    from firm_bench.method.models import initial_model

    def weights(**kw):
        cfg = smoke(**kw)
        return torch.cat([p.detach().flatten() for p in initial_model(cfg["model"], cfg["seed"]).parameters()])

    a = weights(**{"loss.name": "firm"})
    assert torch.equal(a, weights(**{"loss.name": "ntxent", "outliers.name": "none", "optim.lr": 0.3}))
    assert not torch.equal(a, weights(**{"seed": 1}))


@pytest.mark.slow
def test_best_test_selects_by_the_rotation_score(tmp_path):
    """checkpoint.select best_test picks the evaluated epoch (never epoch 0) with the best rot score at eval.k,
    the reference's cos_5_angled; the curve's select_auroc equals rot of that checkpoint's feature cache."""
    cfg = smoke(**{"optim.epochs": 3, "checkpoint.select": "best_test", "features.crops": 0,
                   "features.untrained": "false"})
    assert cfg["checkpoint"]["select_score"] == "rot"  # the schema default: the reference's choice
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    curve = read_curve(run)
    assert [r["epoch"] for r in curve] == [0, 1, 2, 3] and all("select_auroc" in r for r in curve)
    trained = [r for r in curve if r["epoch"] > 0]
    best = max(trained, key=lambda r: r["select_auroc"])  # first maximum, as np.argmax
    assert torch.load(run / "checkpoints" / "best_test.pt", weights_only=False)["epoch"] == best["epoch"]
    extract_run_features(cfg, run)
    score_run(cfg, run, names=["rot", "cos"], ks=[cfg["eval"]["k"]])
    scores = runs.read_json(run / "metrics.json")["scores"]
    assert scores["rot_k5"]["auroc"] == pytest.approx(best["select_auroc"], abs=1e-6)
    assert scores["cos_k5"]["auroc"] == pytest.approx(best["auroc"], abs=1e-6)


@pytest.mark.slow
def test_kill_and_resume_gives_the_same_numbers(tmp_path, straight_smoke):
    """A run SIGKILLed mid-way and restarted ends with the uninterrupted run's numbers.

    The kill must land mid-run (after the first checkpoint, before the end): the test fails, rather than
    passing vacuously, if it lands after training finished.
    """
    epochs = STRAIGHT_EPOCHS
    base = [sys.executable, "-m", "firm_bench.cli", "train", "--preset", "smoke", *STRAIGHT_SETS, "--no-progress"]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    straight, killed = straight_smoke, tmp_path / "killed"

    proc = subprocess.Popen([*base, "--run-dir", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = killed / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline:
        if ckpt.exists() and torch.load(ckpt, weights_only=False)["epoch"] >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted_at = torch.load(ckpt, weights_only=False)["epoch"]
    assert 1 <= interrupted_at < epochs, interrupted_at
    assert not (killed / runs.TRAINED_FILE).exists() and runs.read_status(killed)["state"] == "running"
    resumed = subprocess.run([*base, "--run-dir", str(killed)], check=True, env=env, capture_output=True, text=True)
    assert f"from its checkpoint at epoch {interrupted_at}/{epochs}" in resumed.stderr

    a, b = read_curve(straight), read_curve(killed)
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b] == list(range(epochs + 1))  # 0: the untrained model
    for ra, rb in zip(a, b):
        assert ra["auroc"] == pytest.approx(rb["auroc"], abs=1e-6)
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-5, nan_ok=True)  # epoch 0 has no loss
    wa = torch.load(straight / "checkpoints" / "last.pt", weights_only=False)["model"]
    wb = torch.load(killed / "checkpoints" / "last.pt", weights_only=False)["model"]
    for key in wa:
        assert torch.allclose(wa[key].float(), wb[key].float(), atol=1e-5), key


def test_nan_loss_is_recorded_as_failure(tmp_path):
    cfg = smoke(**{"optim.lr": 1e30, "optim.epochs": 2, "model.bn_momentum": 1.0})
    with pytest.raises(TrainingFailed, match="non-finite loss"):
        train(cfg, tmp_path / "run", progress=False)
    status = runs.read_status(tmp_path / "run")
    assert status["state"] == "failed" and "non-finite loss" in status["reason"]


def test_resume_refuses_a_different_config(tmp_path):
    cfg = smoke(**{"optim.epochs": 1})
    train(cfg, tmp_path / "run", progress=False)
    with pytest.raises(config.ConfigError, match="different config"):
        train(smoke(**{"optim.epochs": 1, "loss.name": "ntxent"}), tmp_path / "run", progress=False)


def test_batch_larger_than_training_set_is_a_clear_error(tmp_path):
    with pytest.raises(config.ConfigError, match="optim.batch_size"):
        train(smoke(**{"optim.batch_size": 100000}), tmp_path / "run", progress=False)


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_schedules_warm_up_then_decay(name):
    optim = config.schema_defaults()["optim"]
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=optim["lr"], momentum=0.9)
    total, per_epoch = 2000 * 10, 10
    sched = SCHEDULES.get(name)(opt, total, per_epoch, optim)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    peak = max(range(total), key=lambda i: lrs[i])
    assert 150 <= peak <= 250  # 1% (onecycle) or 20 epochs (warmup_cosine) of 2000 epochs
    assert max(lrs) == pytest.approx(optim["lr"], rel=1e-3)
    assert lrs[-1] < 1e-5 and lrs[0] < 0.05 * optim["lr"]
    assert all(b <= a + 1e-12 for a, b in zip(lrs[peak:], lrs[peak + 1:]))
    assert not any(math.isnan(x) for x in lrs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (runs on a GPU machine)")
def test_train_features_scores_on_cuda(tmp_path):
    """The GPU path: training, in-process evaluation and features on cuda give a scored run."""
    cfg = config.resolve("smoke", overrides=["device=cuda", "optim.epochs=2"])
    result = train(cfg, tmp_path / "run", progress=False)
    assert 0.0 <= result.final_auroc <= 1.0
    assert runs.read_json(tmp_path / "run" / "versions.json")["gpu"]
    extract_run_features(cfg, tmp_path / "run")
    score_run(cfg, tmp_path / "run")
    metrics = runs.read_json(tmp_path / "run" / "metrics.json")
    assert metrics["scores"]["cos_k5"]["auroc"] == pytest.approx(metrics["final_auroc"], abs=1e-4)


# --------------------------------------------------------------------------- #
# loss.id_labels: multi-class FIRM on the in-distribution classes
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def labelled_data():
    """fmnist_mini, every class (dataset.cls: all), cut to 16 images of each of four classes: 4 quick steps."""
    data = load_run_data(smoke(**{"dataset.cls": "all"}))
    keep = torch.cat([torch.nonzero(data.train_labels == c).flatten()[:16] for c in (3, 0, 7, 1)])
    return dataclasses.replace(data, train_ids=data.train_ids[keep], train_labels=data.train_labels[keep])


def test_run_data_carries_the_training_classes():
    one_class = load_run_data(smoke())
    assert one_class.train_labels.dtype == torch.int64
    assert one_class.train_labels.shape == (one_class.train_ids.shape[0],) and set(one_class.train_labels.tolist()) == {0}
    every = load_run_data(smoke(**{"dataset.cls": "all"}))
    assert every.train_labels.shape == (2000,) and set(every.train_labels.tolist()) == set(range(10))
    assert every.test_images.shape[0] == 0 and every.test_targets.shape == (0,)  # no test set: no curve


def test_id_labels_run_trains(tmp_path, labelled_data):
    cfg = smoke(**{"dataset.cls": "all", "loss.id_labels": "true", "optim.epochs": 1})
    result = train(cfg, tmp_path / "run", progress=False, data=labelled_data)
    assert result.epochs == 1 and result.final_auroc is None  # cls: all without dataset.ood: no learning curve
    assert runs.read_status(tmp_path / "run")["state"] == "ok"
    assert config.load_yaml(tmp_path / "run" / "config.yaml")["loss"]["id_labels"] is True
    labels = recipe_labels(cfg)
    assert labels["id_labels"] is True and labels["loss_form"] == "pairwise" and labels["loss_form_setting"] == "reference"


def _first_step_loss(t, ed):
    idx = ed.order[: t.batch]
    return t.engine.loss(ed.images.index_select(0, idx), ed.labels.index_select(0, idx), ed.draws.at(0))


def test_id_labels_training_loss_uses_the_classes(labelled_data):
    on = smoke(**{"dataset.cls": "all", "loss.id_labels": "true"})
    off = smoke(**{"dataset.cls": "all"})
    t_on, t_off = build_training(on, labelled_data, CPU), build_training(off, labelled_data, CPU)
    ed_on, ed_off = t_on.prepare(1), t_off.prepare(1)
    n = labelled_data.train_ids.shape[0]
    assert ed_on.labels.shape == (4 * n, 2) and ed_off.labels.shape == (4 * n,)  # ID images + 3 rotations
    assert torch.equal(ed_on.labels[:, 0], ed_off.labels)
    assert torch.equal(ed_on.labels[:n, 1], labelled_data.train_labels) and (ed_on.labels[n:, 1] == -1).all()
    assert torch.equal(ed_on.images, ed_off.images) and torch.equal(ed_on.order, ed_off.order)
    with torch.no_grad():
        t_on.model.eval()
        t_off.model.load_state_dict(t_on.model.state_dict())
        t_off.model.eval()
        loss_on, loss_off = _first_step_loss(t_on, ed_on), _first_step_loss(t_off, ed_off)
        # the same as multi-class FIRM computed on the batch's projections directly
        idx = ed_on.order[: t_on.batch]
        x = t_on.engine.augment_fn(ed_on.images[idx], ed_on.draws.at(0))
        z1, z2 = t_on.model(x).z.float().chunk(2)
        assert loss_on.item() == pytest.approx(get_loss("firm")(z1, z2, ed_on.labels[idx]).item(), rel=1e-6)
    assert abs(loss_on.item() - loss_off.item()) > 1e-4  # four classes in the batch: other positives


def test_id_labels_graph_body_equals_the_eager_step(labelled_data):
    """The CUDA graph's body, run eagerly, gathers (M, 2) labels and gives the eager step's loss."""
    cfg = smoke(**{"dataset.cls": "all", "loss.id_labels": "true"})
    eager, body = build_training(cfg, labelled_data, CPU), build_training(cfg, labelled_data, CPU)
    ed = eager.prepare(1)
    assert ed.labels.shape == (ed.images.shape[0], 2)
    want = _first_step_loss(eager, ed)
    assert engine_of(body, 1, "body").run_epoch(one_step(body.prepare(1), 0, body.batch))[0] == want.detach()


def test_paired_batches_hold_each_id_image_with_all_its_outliers():
    """optim.batching paired (the reference's MVTec loader): a step is B ID images, then their outlier copies."""
    from firm_bench.datasets import load_run_data
    from firm_bench.run.training import build_training

    cfg = smoke(**{"optim.batching": "paired", "optim.batch_size": 8, "outliers.name": "rot"})
    data = load_run_data(cfg)
    n = data.train_ids.shape[0]
    t = build_training(cfg, data, torch.device("cpu"))
    assert (t.ids_per_step, t.batch, t.steps_per_epoch) == (8, 32, n // 8)
    ep = t.prepare(1)
    order = ep.order.view(t.steps_per_epoch, t.batch)
    ids = order[:, :8]
    assert len(set(ids.flatten().tolist())) == ids.numel() and int(ids.max()) < n  # distinct ID images
    for step in (0, t.steps_per_epoch - 1):
        rows = order[step]
        labels = ep.labels[rows]
        assert labels.tolist() == [0] * 8 + [1] * 8 + [2] * 8 + [3] * 8
        for copy in (1, 2, 3):  # row copy * 8 + j is ID j rotated by copy quarter turns
            got = ep.images[rows[copy * 8 : (copy + 1) * 8]]
            assert torch.equal(got, torch.rot90(ep.images[rows[:8]], copy, dims=(2, 3)))
    pooled = build_training(smoke(**{"optim.batch_size": 8, "outliers.name": "rot"}), data, torch.device("cpu"))
    assert (pooled.ids_per_step, pooled.batch, pooled.steps_per_epoch) == (None, 8, 4 * n // 8)
    assert config.protocol(config.resolve("paper", overrides=["dataset.name=mvtec"])).batching == "paired"
    with pytest.raises(config.ConfigError, match="optim.batching=paired .*outliers.name='none'"):
        build_training(smoke(**{"optim.batching": "paired", "outliers.name": "none"}), data, torch.device("cpu"))
