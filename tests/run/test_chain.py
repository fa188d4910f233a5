"""The chain of identity (records.chain): every record bound to what made it, and to the path that names it.

The sequences of issue 22, each with real trainings of the smoke preset: a
run killed at epoch 2, peeked at (``features`` then ``score``), resumed to
epoch 4 and scored again; a cache extracted under other ``features.*``
values or copied from another run's directory; a scored run copied under
another loss and seed. Before the chain, each was scored or tabled
silently as the run's.
"""

import os
import shutil
import subprocess
import sys

import pytest

from firm_bench.cli import main
from firm_bench.core import config
from firm_bench.core import rundir as runs
from firm_bench.records import summary
from firm_bench.records.chain import recorded_sha256
from firm_bench.records.status import format_status, run_state
from firm_bench.run import ledger as ledger_mod
from firm_bench.run.train import train

EPOCHS = 4
SCORES = {"scores.names": "[cos, center]", "scores.k": "[5]"}


def smoke(**overrides):
    sets = {"device": "cpu", "threads": 1, "optim.epochs": EPOCHS, "checkpoint.every": 1, **SCORES, **overrides}
    return config.resolve("smoke", overrides=[f"{k}={v}" for k, v in sets.items()])


class Killed(BaseException):
    """The training process dies (kill -9) right after its epoch-2 checkpoint."""


def _train_killed_at(cfg, run, epoch):
    real = ledger_mod.RunLedger.save_checkpoint

    def save_then_die(self, at, *args, **kwargs):
        real(self, at, *args, **kwargs)
        if at == epoch:
            raise Killed

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ledger_mod.RunLedger, "save_checkpoint", save_then_die)
        with pytest.raises(Killed):
            train(cfg, run, progress=False)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """A run killed at epoch 2, peeked at with ``features`` and ``score``, then resumed to epoch 4 by ``train``.

    Its directory is a run id under a runs root (so its path names it). Returns (cfg, run dir, peek's metrics).
    """
    cfg = smoke()
    run = runs.run_dir_for(cfg, tmp_path_factory.mktemp("chain") / "runs")
    _train_killed_at(cfg, run, 2)
    assert not (run / runs.TRAINED_FILE).exists()
    assert main(["features", str(run)]) == 0 and main(["score", str(run)]) == 0  # the peek
    peek = runs.read_json(run / runs.METRICS_FILE)
    assert peek["scores"]["cos_k5"]["status"] == "ok"
    backup = run.parent / "epoch2-checkpoints"  # outside the run directory (a backup of the epoch-2 checkpoint)
    shutil.copytree(run / "checkpoints", backup)
    train(cfg, run, progress=False)  # resumes from the epoch-2 checkpoint to the end
    assert runs.read_json(run / runs.TRAINED_FILE)["state"] == "ok"
    return cfg, run, peek


def _copy(run, dst):
    shutil.copytree(run, dst)
    return dst


def test_trained_json_names_the_final_checkpoint_and_the_run(resumed):
    cfg, run, _ = resumed
    trained = runs.read_json(run / runs.TRAINED_FILE)
    assert trained["checkpoint_sha256"]["last.pt"] == runs.file_sha256(run / "checkpoints" / "last.pt")
    assert trained["run"] == {"dataset": "fmnist_mini", "cls": "0", "loss": "firm", "outliers": "rot",
                              "recipe": cfg["recipe"], "seed": 0}


def test_peeked_scores_are_refused_after_the_resume_naming_both_files_and_the_fix(resumed, tmp_path, capsys):
    _, run, peek = resumed
    run = _copy(run, tmp_path / "runs" / runs.Run.of_dir(run).id)
    meta, trained = runs.meta_path(run), run / runs.TRAINED_FILE
    assert main(["score", str(run)]) == 2  # the epoch-2 cache is not scored as the run's
    err = capsys.readouterr().err
    assert err.startswith(f"firm-bench: error: {meta} (") and str(trained) in err and "(epoch 2)" in err, err
    assert f"`firm-bench features {run} --evalset test`, then `firm-bench score {run} --evalset test`" in err
    assert main(["metrics", str(run)]) == 2  # nor are its epoch-2 score files gathered as the run's metrics
    err = capsys.readouterr().err
    assert f"{run / 'scores' / 'test'}" in err and str(trained) in err and f"firm-bench features {run}" in err, err
    assert runs.read_json(run / runs.METRICS_FILE) == peek  # untouched by the refusals
    # readers of metrics.json: status does not count it as scored; the summary does not table its numbers
    state = run_state(run)
    assert state.state == "done" and not state.scored and str(trained) in state.detail
    shown = format_status([state])
    assert "(0 of 1 done scored)" in shown and "done, scores stale (not counted as scored):" in shown, shown
    df = summary.experiment_rows("e", [str(run)], ["cos"], [5])
    assert df["status"].tolist() == ["damaged"] and df["auroc"].isna().all()
    assert str(run / runs.METRICS_FILE) in df["reason"][0] and str(trained) in df["reason"][0]
    # what the error says to do scores the final model
    assert main(["features", str(run)]) == 0 and main(["score", str(run)]) == 0
    record = runs.read_json(runs.score_path(run, "test", "cos", 5))
    assert record["epoch"] == EPOCHS
    assert record["checkpoint_sha256"] == runs.read_json(trained)["checkpoint_sha256"]["last.pt"]
    metrics = runs.read_json(run / runs.METRICS_FILE)
    assert metrics["checkpoint_sha256"] == record["checkpoint_sha256"]
    assert run_state(run).scored
    assert summary.experiment_rows("e", [str(run)], ["cos"], [5])["status"].tolist() == ["ok"]


def test_score_refresh_extracts_a_stale_cache_again(resumed, tmp_path, capsys):
    _, run, _ = resumed
    run = _copy(run, tmp_path / "run")
    assert main(["score", str(run), "--refresh"]) == 0  # what the workflow's score jobs run
    assert "extracting the features again" in capsys.readouterr().err
    assert runs.read_json(runs.meta_path(run))["epoch"] == EPOCHS
    assert all(runs.read_json(runs.score_path(run, "test", n, k))["epoch"] == EPOCHS
               for n, k in (("cos", 5), ("center", None)))
    assert main(["metrics", str(run)]) == 0


def test_a_cache_of_other_features_settings_is_refused(resumed, tmp_path, capsys):
    cfg, run, _ = resumed
    run = _copy(run, tmp_path / "run")
    assert main(["features", str(run)]) == 0 and main(["score", str(run)]) == 0  # crops 2
    train({**cfg, "features": {**cfg["features"], "crops": 5}}, run, progress=False)  # re-finished under crops 5
    assert main(["score", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{runs.meta_path(run)} (" in err and "other features settings" in err and "crops: 2 -> 5" in err, err
    assert str(run / runs.CONFIG_FILE) in err and f"firm-bench features {run} --evalset test" in err
    assert main(["score", str(run), "--refresh"]) == 0
    assert runs.read_json(runs.meta_path(run))["crops"] == 5


def test_a_cache_copied_from_another_runs_directory_is_refused(resumed, tmp_path, capsys):
    cfg, run, _ = resumed
    other = tmp_path / "other"
    train(smoke(**{"optim.epochs": 2, "seed": 1}), other, progress=False)
    assert main(["features", str(other)]) == 0
    run = _copy(run, tmp_path / "run")
    shutil.rmtree(run / "features")
    shutil.copytree(other / "features", run / "features")  # a whole features/ directory, meta.json and records
    assert main(["score", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{runs.meta_path(run)} (" in err and str(run / runs.TRAINED_FILE) in err and "another run" in err, err
    # the cache file alone, under this run's own meta.json
    assert main(["features", str(run)]) == 0
    for name in ("cache.pt", "cache.pt" + runs.CHECKSUM_SUFFIX):
        shutil.copy(other / "features" / "test" / name, run / "features" / "test" / name)
    assert main(["score", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{runs.meta_path(run)} (" in err and str(runs.cache_path(run)) in err, err
    assert recorded_sha256(runs.cache_path(run)) == recorded_sha256(runs.cache_path(other))


def test_a_run_copied_under_another_loss_and_seed_is_refused_by_name(resumed, tmp_path, capsys):
    _, run, _ = resumed
    run = _copy(run, tmp_path / "runs" / runs.Run.of_dir(run).id)
    assert main(["features", str(run)]) == 0 and main(["score", str(run)]) == 0
    ident = runs.Run.of_dir(run)
    fake = runs.Run(ident.dataset, ident.cls, "ntxent", ident.outliers, ident.recipe, 5)
    copied = _copy(run, tmp_path / "runs" / fake.id)  # its records say FIRM seed 0, its path NT-Xent seed 5
    df = summary.experiment_rows("e", [str(run), str(copied)], ["cos"], [5])
    assert df["status"].tolist() == ["ok", "damaged"]
    assert pd_isna(df["auroc"][1]) and df["loss"][1] == "ntxent"  # the path's label, with no number under it
    reason = df["reason"][1]
    assert str(copied / runs.METRICS_FILE) in reason and "loss firm (its path: ntxent)" in reason, reason
    assert "seed 0 (its path: 5)" in reason and f"move {copied} back to {ident.id}" in reason
    curves = summary.experiment_curves("e", [str(run), str(copied)])
    assert set(curves["run_dir"]) == {str(run)}  # nor its learning curve drawn as the path's
    assert "another run than its path names" in capsys.readouterr().err
    state = run_state(copied)
    assert state.state == "damaged" and "loss firm (its path: ntxent)" in state.detail, state
    assert run_state(run).state == "done"


def pd_isna(value):
    import pandas as pd

    return pd.isna(value)


def test_an_older_checkpoint_put_back_is_not_extracted_as_the_final_model(resumed, tmp_path, capsys):
    _, run, _ = resumed
    run = _copy(run, tmp_path / "run")
    shutil.rmtree(run / "checkpoints")
    shutil.copytree(resumed[1].parent / "epoch2-checkpoints", run / "checkpoints")
    assert main(["features", str(run)]) == 2
    err = capsys.readouterr().err
    ckpt = run / "checkpoints" / "last.pt"
    assert err.startswith(f"firm-bench: error: {ckpt} (") and str(run / runs.TRAINED_FILE) in err, err
    assert "not the checkpoint the training ended with" in err


def test_run_on_a_peeked_run_scores_the_final_model_not_the_peek(resumed, tmp_path, capsys):
    cfg, run, peek = resumed
    run = _copy(run, tmp_path / "run")
    sets = [a for k, v in {"device": "cpu", "threads": 1, "optim.epochs": EPOCHS, "checkpoint.every": 1,
                           **SCORES}.items() for a in ("--set", f"{k}={v}")]
    assert main(["run", "--preset", "smoke", "--recipe", cfg["recipe"], *sets, "--run-dir", str(run),
                 "--no-progress"]) == 0
    assert "is finished" not in capsys.readouterr().err  # the peek's metrics are not its results
    metrics = runs.read_json(run / runs.METRICS_FILE)
    assert metrics["checkpoint_sha256"] == runs.read_json(run / runs.TRAINED_FILE)["checkpoint_sha256"]["last.pt"]
    assert metrics["checkpoint_sha256"] != peek["checkpoint_sha256"]
    assert runs.read_json(runs.score_path(run, "test", "cos", 5))["epoch"] == EPOCHS


@pytest.mark.slow
def test_score_jobs_of_a_stale_run_together_both_score_the_final_model(resumed, tmp_path):
    """The workflow's score jobs of one run (one per family) start together on a stale cache: the first to
    hold the features extracts them, the other waits or finds them fresh; both score the final model."""
    _, run, _ = resumed
    run = _copy(run, tmp_path / "run")
    cmd = [sys.executable, "-m", "firm_bench.cli", "score", str(run), "--refresh", "--k", "5", "--scores"]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    procs = [subprocess.Popen([*cmd, name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for name in ("cos", "center")]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert main(["metrics", str(run)]) == 0  # every score file of the final model and the current cache
    metrics = runs.read_json(run / runs.METRICS_FILE)
    assert set(metrics["scores"]) == {"cos_k5", "center"}
    assert all(runs.read_json(runs.score_path(run, "test", n, k))["epoch"] == EPOCHS
               for n, k in (("cos", 5), ("center", None)))
