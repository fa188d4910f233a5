"""Tables 1d, 2/3 and 4 through the workflow on fixtures written in the real on-disk layouts."""

import pandas as pd
import pytest
import yaml

from tests.datasets import fixtures

from .conftest import job_stats, snakemake


def _config(data_root) -> dict:
    return {
        "preset": "smoke",
        "seeds": [0],
        "data_root": str(data_root),
        "gpu_per_job": 0,
        "threads": {"train": 1, "features": 1, "score": 1},
        "run_overrides": {"optim.epochs": 1, "optim.batch_size": 8, "dataset.image_size": 32,
                          "features.crops": 1, "eval.k": 1},
        "experiments": {
            "table1d": {"datasets": ["cats_vs_dogs"], "classes": [0], "losses": ["firm"],
                        "scores": ["cos", "rot"], "k": [1]},
            "table2": {"datasets": ["mvtec"], "classes": ["bottle"], "losses": ["ntxent", "firm"],
                       "outliers": ["cutpaste_scar", "nsa"], "scores": ["cos"], "k": [1]},
            "table4": {"datasets": ["cifar10"], "ood": ["svhn", "lsun_fix"], "losses": ["firm"],
                       "scores": ["cos", "rot"], "k": [1, 5]},  # k = 5: the k paper tables show
        },
    }


@pytest.fixture
def data_root(tmp_path):
    root = tmp_path / "data"
    fixtures.write_cats_vs_dogs(root, n_per_class=10)
    fixtures.write_mvtec(root, classes=("bottle", "grid"), n_train=4)
    fixtures.write_cifar10(root, per_class={"train": 3, "test": 2})
    fixtures.write_svhn(root)
    fixtures.write_ood_folder("lsun_fix", root)
    return root


def test_dry_run_plans_tables_1d_2_4(tmp_path, data_root):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(_config(data_root)))
    stats = job_stats(snakemake(tmp_path, "-n", "--quiet", "rules", "--configfile", cfg).stdout)
    # 1d: 1 run; 2: 2 losses x 2 outlier sources; 4: 1 run (cls all) scored against 2 OOD sets
    assert stats["train"] == 1 + 4 + 1
    assert stats["features"] == 1 + 4 + 2
    assert stats["score"] == 1 + 4 + 2  # one family (knn) per run and evaluation set
    assert stats["summarize_experiment"] == 3


@pytest.mark.slow
def test_tables_1d_2_4_train_and_score_on_fixtures(tmp_path, data_root):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(_config(data_root)))
    snakemake(tmp_path, "--cores", "2", "--configfile", cfg, timeout=900)
    summary = pd.read_csv(tmp_path / "results" / "summary.csv", dtype={"cls": str})
    assert set(summary["status"]) == {"ok"}, summary[summary["status"] != "ok"][["run_dir", "reason"]]
    t4 = summary[summary["experiment"] == "table4"]
    assert set(t4["evalset"]) == {"svhn", "lsun_fix"} and set(t4["cls"]) == {"all"}
    assert t4["run_dir"].nunique() == 1  # one trained model serves every OOD set
    # Table 4: each score of ours is a row, beside the same printed FIRM row (the paper's score is unstated)
    cells = pd.read_csv(tmp_path / "results" / "tables" / "table4.csv", dtype={"ood": str})
    ours = cells[cells["ours_status"] == "ok"]
    assert set(ours["row"]) == {"FIRM cos", "FIRM rot"}
    svhn = ours[ours["column"] == "svhn"].set_index("row")["paper_value"]
    assert svhn["FIRM cos"] == svhn["FIRM rot"] == 99.8
    t2 = summary[summary["experiment"] == "table2"]
    assert set(t2["outliers"]) == {"cutpaste_scar", "nsa"} and set(t2["loss"]) == {"ntxent", "firm"}
    assert set(summary[summary["experiment"] == "table1d"]["score"]) == {"cos", "rot"}
