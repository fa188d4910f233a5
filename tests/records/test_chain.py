"""records.chain from hand-made records (no training): which links are checked when, and what the errors name.

The sequences with real trainings (peek then resume, copied caches, a run copied under another loss and
seed) are in tests/run/test_chain.py.
"""

import pytest

from firm_bench.core import config
from firm_bench.core import rundir as runs
from firm_bench.core.errors import StaleRecord
from firm_bench.records import chain
from firm_bench.records.metrics import collect_metrics


@pytest.fixture
def cfg():
    return config.resolve("smoke")


def _run_dir(root, cfg, **changes):
    ident = {**chain.run_identity(cfg), **changes}
    return root / runs.Run(**ident).id


def _trained(run, sha="a" * 64, **fields):
    runs.atomic_write_json(run / runs.TRAINED_FILE, {"state": "ok", "checkpoint_sha256": {"last.pt": sha}, **fields})


def _score(run, cfg, name="cos", k=5, **links):
    path = runs.score_path(run, "test", name, k)
    runs.atomic_write_json(path, {"score": name, "k": k, "status": "ok", "auroc": 0.8, "epoch": 2, **links})
    return path


def test_records_without_links_are_taken_as_they_are_only_while_no_model_is_known(tmp_path, cfg):
    run = tmp_path / "run"
    meta = {"state": "ok", "epoch": 2}  # a hand-made cache's meta.json, or one of an older firm-bench
    chain.check_features(run, cfg, "test", meta)  # no trained.json, no checkpoint: nothing to compare with
    _trained(run)
    with pytest.raises(StaleRecord) as err:
        chain.check_features(run, cfg, "test", meta)
    msg = str(err.value)
    assert msg.startswith(f"{runs.meta_path(run)} (the feature metadata of evaluation set test)")
    assert "none (not recorded" in msg and str(run / runs.TRAINED_FILE) in msg and "aaaaaaaaaaaa..." in msg
    assert f"`firm-bench features {run} --evalset test`, then `firm-bench score {run} --evalset test`" in msg


def test_a_failed_training_has_no_model_to_check_against(tmp_path, cfg):
    run = tmp_path / "run"
    runs.atomic_write_json(run / runs.TRAINED_FILE, {"state": "failed", "reason": "non-finite loss"})
    assert chain.model_sha256(run, cfg) == (None, run / runs.TRAINED_FILE)
    path = _score(run, cfg)
    chain.check_score(run, cfg, path, runs.read_json(path))  # a failed run's score records: its failure


def test_the_features_link_names_each_setting_that_differs(tmp_path, cfg):
    run = tmp_path / "run"
    _trained(run)
    meta = {"state": "ok", "checkpoint_sha256": "a" * 64,
            "features": {**chain.features_identity(cfg), "crops": 5, "angles": [0]}}
    with pytest.raises(StaleRecord, match=r"other features settings .*angles: \[0\] -> \[0, 90, 180, 270\]; "
                                          r"crops: 5 -> 2"):
        chain.check_features(run, cfg, "test", meta)
    meta["features"] = {**chain.features_identity(cfg)}
    chain.check_features(run, cfg, "test", meta)  # the extraction's batch size is not part of it
    assert "batch_size" not in meta["features"]


def test_metrics_refuse_or_leave_out_a_score_of_another_model(tmp_path, cfg, capsys):
    run = tmp_path / "run"
    _trained(run)
    runs.write_curve(run, [{"epoch": e, "auroc": 0.7, "loss": 1.0, "lr": 0.1, "elapsed_s": e} for e in (0, 1, 2)])
    fresh = _score(run, cfg, "cos", 5, checkpoint_sha256="a" * 64)
    stale = _score(run, cfg, "center", None, checkpoint_sha256="b" * 64)
    with pytest.raises(StaleRecord) as err:
        collect_metrics(cfg, run)
    assert str(err.value).startswith(f"{stale} (the center score record of evaluation set test)")
    assert "bbbbbbbbbbbb..." in str(err.value) and str(run / runs.TRAINED_FILE) in str(err.value)
    metrics = collect_metrics(cfg, run, stale="leave out")  # a score job: its siblings rescore the rest
    assert set(metrics["scores"]) == {"cos_k5"} and list(metrics["scores_sha256"]) == ["test/cos_k5"]
    assert f"left out of {run / runs.METRICS_FILE}: {stale}" in capsys.readouterr().err
    assert metrics["checkpoint_sha256"] == "a" * 64 and fresh.is_file()


def test_identity_is_compared_only_for_paths_that_name_a_run(tmp_path, cfg):
    chain.check_identity(tmp_path / "run", tmp_path / "run" / "metrics.json", {"loss": "ntxent"})
    home = _run_dir(tmp_path / "runs", cfg)
    chain.check_identity(home, home / "metrics.json", chain.run_identity(cfg))
    chain.check_identity(home, home / "metrics.json", {"loss": cfg["loss"]["name"]})  # older: fewer fields
    moved = _run_dir(tmp_path / "runs", cfg, recipe="paper", outliers="oe")
    with pytest.raises(StaleRecord) as err:
        chain.check_identity(moved, moved / "metrics.json", chain.run_identity(cfg))
    msg = str(err.value)
    assert msg.startswith(f"{moved / 'metrics.json'} (the run's identity) is the record of another run")
    assert "outliers rot (its path: oe), recipe smoke (its path: paper)" in msg
    assert f"move {moved} back to {runs.Run(**chain.run_identity(cfg)).id}" in msg
    with pytest.raises(StaleRecord, match=r"outliers rot \(its path: oe\).* back to its own run directory"):
        chain.check_identity(moved, moved / "metrics.json", {"outliers": "rot", "recipe": "../x"})


def test_metrics_of_an_earlier_model_or_another_curve_are_stale(tmp_path, cfg):
    run = tmp_path / "run"
    _trained(run, curve_sha256="c" * 64)
    metrics = {"recipe": {"checkpoint": "last"}, "checkpoint_sha256": "a" * 64, "curve_sha256": "c" * 64}
    chain.check_metrics(run, metrics)
    with pytest.raises(StaleRecord, match=r"holds the scores of the model with sha256 bbbbbbbbbbbb\.\.\."):
        chain.check_metrics(run, {**metrics, "checkpoint_sha256": "b" * 64})
    with pytest.raises(StaleRecord, match=r"another learning curve"):
        chain.check_metrics(run, {**metrics, "curve_sha256": "d" * 64})
    chain.check_metrics(run, None)  # no metrics.json: only trained.json's identity (none recorded here)
