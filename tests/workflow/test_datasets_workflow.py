"""Tables 1d, 2/3 and 4 (and the MVTec t-SNE figures) through the workflow on fixtures written in the real on-disk layouts."""

import pandas as pd
import pytest
import yaml

from firm_bench.paper import figures
from firm_bench.records.summary import read_summaries
from tests.helpers import data as fixtures
from tests.helpers.snakemake import job_stats, snakemake

MVTEC_CLASSES = ["bottle", "grid"]  # one object class (Figure 6), one texture class (Figure 7)


def _config(data_root) -> dict:
    return {
        "preset": "smoke",
        "seeds": [0],
        "data_root": str(data_root),
        "gpu_per_job": 0,
        "threads": {"train": 1, "features": 1, "score": 1},
        "run_overrides": {"optim.epochs": 1, "optim.batch_size": 4,  # MVTec: 4 ID images per paired step
                          "dataset.image_size": 32,
                          "features.crops": 1, "eval.k": 1},
        "experiments": {
            "table1d": {"datasets": ["cats_vs_dogs"], "classes": [0], "losses": ["firm"],
                        "scores": ["cos", "rot"], "k": [1]},
            "table2": {"datasets": ["mvtec"], "classes": MVTEC_CLASSES, "losses": ["ntxent", "firm"],
                       "outliers": ["ref_cutpaste_scar", "ref_nsa"], "scores": ["cos"], "k": [1, 5],
                       "paper_items": ["table2", "table3", "fig3", "fig6", "fig7"]},
            "table4": {"datasets": ["cifar10"], "ood": ["svhn", "lsun_fix"], "losses": ["firm"],
                       "scores": ["cos", "rot"], "k": [1, 5]},  # k = 5: the k paper tables show
        },
    }


@pytest.fixture
def data_root(tmp_path):
    root = tmp_path / "data"
    fixtures.write_cats_vs_dogs(root, n_per_class=10)
    fixtures.write_mvtec(root, classes=("bottle", "grid"), n_train=6)  # a bank of at least k = 5
    fixtures.write_cifar10(root, per_class={"train": 3, "test": 2})
    fixtures.write_svhn(root)
    fixtures.write_ood_folder("lsun_fix", root)
    return root


@pytest.mark.slow  # a Snakemake process (the unit tier runs none)
def test_dry_run_plans_tables_1d_2_4(tmp_path, data_root):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(_config(data_root)))
    stats = job_stats(snakemake(tmp_path, "-n", "--quiet", "rules", "--configfile", cfg).stdout)
    # 1d: 1 run; 2: 2 classes x 2 losses x 2 outlier sources; 4: 1 run (cls all) scored against 2 OOD sets
    assert stats["train"] == 1 + 8 + 1
    assert stats["features"] == 1 + 8 + 2
    assert stats["score"] == 1 + 8 + 2  # one family (knn) per run and evaluation set
    assert stats["summarize_experiment"] == 3


@pytest.mark.slow
def test_tables_1d_2_4_train_and_score_on_fixtures(tmp_path, data_root, monkeypatch):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(_config(data_root)))
    targets = ["results/summary.csv", "results/tables/table2.md", "results/tables/table3.md", "results/tables/table4.md",
               "figures/fig6.png",
               "figures/fig7.png"]
    snakemake(tmp_path, *targets, "--cores", "2", "--configfile", cfg, timeout=900)
    summary = pd.read_csv(tmp_path / "results" / "summary.csv", dtype={"cls": str})
    assert set(summary["status"]) == {"ok"}, summary[summary["status"] != "ok"][["run_dir", "reason"]]
    t4 = summary[summary["experiment"] == "table4"]
    assert set(t4["evalset"]) == {"svhn", "lsun_fix"} and set(t4["cls"]) == {"all"}
    assert t4["run_dir"].nunique() == 1  # one trained model serves every OOD set
    # Table 4: each score of ours is a row, beside the same printed FIRM row (the paper's score is unstated)
    cells = pd.read_csv(tmp_path / "results" / "tables" / "table4.csv", dtype={"ood": str})
    ours = cells[cells["ours_status"] == "ok"]
    assert set(ours["row"]) == {"FIRM cos", "FIRM rot", "untrained encoder cos", "untrained encoder rot"}
    svhn = ours[ours["column"] == "svhn"].set_index("row")["paper_value"]
    assert svhn["FIRM cos"] == svhn["FIRM rot"] == 99.8
    baseline = ours[ours["row"].str.startswith("untrained")]  # ours only: never compared with the paper
    assert baseline["paper_value"].isna().all() and not baseline["comparable"].any()
    t2 = summary[summary["experiment"] == "table2"]
    assert set(t2["outliers"]) == {"ref_cutpaste_scar", "ref_nsa"} and set(t2["loss"]) == {"ntxent", "firm"}
    assert set(summary[summary["experiment"] == "table1d"]["score"]) == {"cos", "rot"}
    # MVTec end to end by class name: run directories, summaries, the paper's per-class cells, t-SNE panels
    assert set(t2["cls"]) == set(MVTEC_CLASSES)
    assert all(f"/mvtec/{c}/" in d for c, d in zip(t2["cls"], t2["run_dir"]))
    assert set(t2["eval_size"]) == {32} and set(t2["eval_zoom"]) == {1.0} and set(t2["batching"]) == {"paired"}
    for table, losses in (("table2", {"ntxent", "firm"}), ("table3", {"firm"})):
        cells = pd.read_csv(tmp_path / "results" / "tables" / f"{table}.csv", dtype={"cls": str})
        ours = cells[(cells["dataset"] == "mvtec") & cells["cls"].isin(MVTEC_CLASSES) & (cells["kind"] == "value")]
        for loss in losses:
            mine = ours[ours["loss"] == loss]
            assert set(mine["cls"]) == set(MVTEC_CLASSES), (table, loss, mine[["cls", "ours_status"]])
            assert (mine["ours_status"] == "ok").all() and mine["ours_mean"].notna().all()
            assert mine["paper_value"].notna().all(), f"{table}: our {loss} cells are not matched with the paper's"
    frame = read_summaries([tmp_path / "results" / "summary" / "table2.csv"])
    monkeypatch.chdir(tmp_path)  # run directories are relative to the workflow's directory
    for name, cls in (("fig6", "bottle"), ("fig7", "grid")):
        fig = figures.draw(name, figures.FigureData(frame, figures.read_curves([])))
        drawn = {ax.get_title().split(" (seed")[0] for ax in fig.axes if ax.collections}
        assert {f"{cls}: NT-Xent", f"{cls}: FIRM"} <= drawn, (name, drawn)
