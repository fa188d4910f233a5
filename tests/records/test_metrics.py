"""records.metrics: a run's metrics.json from its score files and learning curve, on run directories built by hand."""

import numpy as np
import pytest

from firm_bench.core import config
from firm_bench.core import rundir as runs
from firm_bench.records.metrics import collect_metrics, precision_of, recipe_labels, write_metrics


def _cfg(**overrides):
    return config.resolve(preset="smoke", overrides=[f"{k}={v}" for k, v in overrides.items()])


def _score(run_dir, evalset, score, k, auroc, status="ok", untrained=None, reason=None):
    rec = {"score": score, "k": k, "status": status, "auroc": auroc, "reason": reason}
    if untrained is not None:
        rec["untrained"] = {"status": "ok", "auroc": untrained}
    runs.atomic_write_json(runs.score_path(run_dir, evalset, score, k), rec)


def _simpson_on_unit_interval(values):
    """AULC as the reference's integrate_auc: Simpson's rule over x = linspace(0, 1, n), n odd (written out)."""
    y = np.asarray(values, dtype=float)
    assert len(y) % 2 == 1
    h = 1.0 / (len(y) - 1)
    return float(h / 3 * (y[0] + y[-1] + 4 * y[1:-1:2].sum() + 2 * y[2:-1:2].sum()))


def test_metrics_gather_every_score_file_of_every_evaluation_set(tmp_path):
    cfg = _cfg()
    _score(tmp_path, "test", "cos", 5, 0.8, untrained=0.6)
    _score(tmp_path, "test", "center", None, 0.7)
    _score(tmp_path, "ood-svhn", "cos", 5, 0.9)
    _score(tmp_path, "test", "kde", None, None, status="failed", reason="singular bandwidth")
    m = collect_metrics(cfg, tmp_path)
    assert set(m["evalsets"]) == {"test", "ood-svhn"}
    assert set(m["evalsets"]["test"]) == {"cos_k5", "center", "kde"}
    assert m["evalsets"]["test"]["cos_k5"]["untrained_auroc"] == 0.6
    assert m["evalsets"]["test"]["center"]["untrained_auroc"] is None
    assert m["evalsets"]["test"]["kde"] == {"score": "kde", "k": None, "status": "failed", "auroc": None,
                                            "reason": "singular bandwidth", "untrained_auroc": None}
    assert m["scores"] == m["evalsets"]["test"]
    assert m["run"] == {"dataset": cfg["dataset"]["name"], "cls": cfg["dataset"]["cls"], "loss": cfg["loss"]["name"],
                        "outliers": cfg["outliers"]["name"], "recipe": cfg["recipe"], "seed": cfg["seed"]}


def test_aulc_leaves_out_the_untrained_point_and_final_is_the_last(tmp_path):
    points = [(0, 0.50), (1, 0.70), (2, 0.60), (3, 0.90)]
    runs.write_curve(tmp_path, [{"epoch": e, "auroc": a, "loss": 1.0, "lr": 0.1, "elapsed_s": e} for e, a in points])
    runs.atomic_write_json(tmp_path / runs.TRAINED_FILE, {"state": "ok"})  # finished: its curve counts
    m = collect_metrics(_cfg(**{"optim.epochs": 3, "eval.every": 1, "eval.at_start": "true"}), tmp_path)
    assert m["curve_points"] == 3
    assert m["final_auroc"] == pytest.approx(0.90) and m["best_test_auroc"] == pytest.approx(0.90)
    assert m["aulc"] == pytest.approx(_simpson_on_unit_interval([0.70, 0.60, 0.90]))
    assert m["untrained_curve_auroc"] == pytest.approx(0.50)


def test_a_curve_of_one_point_has_no_aulc(tmp_path):
    runs.write_curve(tmp_path, [{"epoch": 1, "auroc": 0.7, "loss": 1.0, "lr": 0.1, "elapsed_s": 1}])
    runs.atomic_write_json(tmp_path / runs.TRAINED_FILE, {"state": "ok"})
    assert collect_metrics(_cfg(**{"optim.epochs": 1, "eval.every": 1, "eval.at_start": "false"}), tmp_path)["aulc"] is None


def test_recipe_labels_follow_the_config():
    cfg = _cfg(**{"loss.name": "supcon", "loss.form": "reference", "loss.tau": 0.5})
    labels = recipe_labels(cfg)
    assert labels["loss_form"] == "concat" and labels["loss_form_setting"] == "reference"
    assert labels["tau"] == 0.5 and labels["precision"] is None
    assert recipe_labels(_cfg(**{"loss.name": "firm"}))["loss_form"] == "pairwise"
    assert recipe_labels(_cfg(**{"loss.name": "supcon", "loss.form": "pairwise"}))["loss_form"] == "pairwise"
    assert labels["select_score"] is None  # only best_test selects by a score
    best = recipe_labels(_cfg(**{"checkpoint.select": "best_test", "checkpoint.select_score": "rot"}))
    assert best["checkpoint"] == "best_test" and best["select_score"] == "rot"


@pytest.mark.parametrize("speed, expected", [({"bf16": True}, "bf16"), ({"bf16": False}, "fp32"), ({}, None)])
def test_precision_comes_from_the_resolved_speed_options(speed, expected):
    assert precision_of({"speed": speed}) == expected
    assert precision_of(None) is None


def test_write_metrics_writes_what_collect_reads(tmp_path):
    cfg = _cfg()
    _score(tmp_path, "test", "cos", 5, 0.8)
    written = write_metrics(cfg, tmp_path)
    assert runs.read_json(tmp_path / runs.METRICS_FILE) == runs.read_json(runs.atomic_write_json(
        tmp_path / "expected.json", written))
    _score(tmp_path, "test", "rot", 5, 0.85)  # a later score job: the metrics now hold both
    assert set(write_metrics(cfg, tmp_path)["scores"]) == {"cos_k5", "rot_k5"}


@pytest.mark.parametrize("content, what", [(b"[0.9, 0.8]", "holds a JSON list"), (b"0.9", "holds a JSON float"),
                                           (b'{"score": "cos", "auroc"', "is damaged (")])
def test_a_score_file_that_is_not_a_record_is_named_with_what_to_do(tmp_path, capsys, content, what):
    """A score file holding a JSON list (or a number, or cut short) names itself and the command that rewrites it,
    from the library and on the command line (no AttributeError traceback)."""
    from firm_bench.cli import main
    from firm_bench.core.errors import DamagedFile

    run = tmp_path / "run"
    cfg = _cfg()
    runs.write_run_config(run, cfg)
    _score(run, "test", "center", None, 0.7)
    bad = runs.score_path(run, "test", "cos", 5)
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(content)
    with pytest.raises(DamagedFile) as info:
        collect_metrics(cfg, run)
    text = str(info.value)
    assert text.startswith(f"{bad} (the cos_k5 score record of evaluation set test) {what}"), text
    assert f"rerun `firm-bench score {run} --evalset test --scores cos --k 5`" in text
    assert main(["metrics", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{bad} (the cos_k5 score record of evaluation set test) {what}" in err and "Traceback" not in err
