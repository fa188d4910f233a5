"""Tests of firm_bench/planning/cost.py: run counts, images, GPU-hours, throughput sources, CLI."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from firm_bench.cli import build_parser
from firm_bench.core.facts.datasets import dataset as dataset_facts
from firm_bench.datasets import DATASETS
from firm_bench.method.outliers import OUTLIERS
from firm_bench.planning import cost as P
from tests.helpers import ROOT

PAPER = ROOT / "workflow" / "config" / "paper.yaml"


@pytest.fixture(scope="module")
def paper_cfg() -> dict:
    return yaml.safe_load(PAPER.read_text())


@pytest.mark.parametrize("name", OUTLIERS.names())
def test_multiplicity_matches_the_outlier_sources(name):
    """The table has every registered source and, where one runs without files, equals its epoch size."""
    cfg = {"name": name, "oe_ratio": 3, "oe_path": None}
    m = P.multiplicity(cfg)
    if name.startswith("oe"):
        assert m == 4  # 1 + oe_ratio
        return
    ids = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    images, _ = OUTLIERS.get(name)(cfg, 32).epoch(ids, torch.Generator().manual_seed(0))
    assert images.shape[0] == m * ids.shape[0]


def test_registered_sizes_cover_what_planning_needs(paper_cfg):
    """Every training set has its one-class and whole training sizes and a test size; every OOD set a test size."""
    one_class = [n for n, info in DATASETS.items() if info.role == "one_class"]
    for name in one_class:
        entry = dataset_facts(name)
        for cls in entry.classes:
            assert entry.size("train_per_class", cls) > 0 and entry.size("test", cls) > 0, (name, cls)
    for exp in paper_cfg["experiments"].values():
        for ood in exp.get("ood") or []:
            assert dataset_facts(ood).size("test") > 0
    mvtec = dataset_facts("mvtec")
    assert set(mvtec.sizes["train_per_class"]) == set(DATASETS.get("mvtec").classes) == set(mvtec.sizes["test"])
    assert mvtec.size("train") == 3629 and mvtec.size("test") == 1725  # MVTec AD's official counts


def test_fmnist_mini_sizes_are_the_embedded_data():
    from firm_bench.datasets import load_split, one_class_split

    train, test, _ = one_class_split("fmnist_mini", 0)
    entry = dataset_facts("fmnist_mini")
    assert len(train) == entry.size("train_per_class", "0") and len(test) == entry.size("test")
    assert len(load_split("fmnist_mini", "train")) == entry.size("train")


def test_table1a_counts_and_hours(paper_cfg):
    """Table 1a: 10 classes x {rot, oe} x 5 seeds; 5000 images x 4 per epoch; 2000 epochs of batch 32."""
    tp = P.Throughput(20000.0, "test", eval_s_per_image=1e-4)
    (cost,) = P.plan_cost(paper_cfg, "table1a", tp)
    assert cost.runs == 100 and cost.epochs == {2000} and cost.images_per_epoch == {20000}
    assert cost.train_views == 100 * 2000 * (20000 // 32) * 32 * 2
    evals = 2000 // 10 + 1  # every 10 epochs, and the untrained model at epoch 0 (eval.at_start)
    features = 2 * 4 * (5000 + 10000 * 11)  # trained + untrained encoder, 4 angles: bank + test with 10 crops
    assert cost.forward_images == 100 * (evals * (5000 + 10000) + features)
    hours = (cost.train_views / 20000 + cost.forward_images * 1e-4) / 3600
    assert cost.gpu_hours == pytest.approx(hours)
    assert cost.row()["runs"] == 100 and cost.row()["images_per_epoch"] == "20000"


def test_paper_items_all_and_unknown_targets(paper_cfg):
    cfg = {**paper_cfg, "experiments": {**paper_cfg["experiments"]}}
    cfg["experiments"]["table7_oe"] = {**cfg["experiments"]["table7_oe"], "paper_items": ["table7"]}
    tp = P.Throughput(1e5, "test")
    costs = P.plan_cost(cfg, "table7", tp)
    assert sorted(c.target for c in costs[:2]) == ["table7", "table7_oe"] and costs[2].target == "table7 (distinct runs)"
    assert costs[-1].runs == costs[0].runs + costs[1].runs  # no run shared between the two
    shared = P.plan_cost(cfg, "all", tp)[-1]
    assert shared.target == "all (distinct runs)" and shared.runs < sum(c.runs for c in P.plan_cost(cfg, "all", tp)[:-1])
    with pytest.raises(ValueError, match="unknown target 'tabel1a'; valid: all, table1a"):
        P.plan_cost(cfg, "tabel1a", tp)


def test_throughput_from_benchmark_json(tmp_path):
    fast = tmp_path / "fast.json"
    fast.write_text(json.dumps({
        "environment": {"gpu": "H100"}, "best": {"variant": "pack4", "views_per_s_per_gpu": 30000.0, "eval_s_per_image": 2e-5},
        "results": {"fast": {"views_per_s": 12000.0, "eval_s_per_image": 3e-5}},
    }))
    tp = P.throughput_from_json(fast)
    assert tp.views_per_s == 30000.0 and tp.eval_s_per_image == 2e-5 and "pack4" in tp.source
    assert P.throughput_from_json(fast, "fast").views_per_s == 12000.0
    with pytest.raises(ValueError, match="no measured variant 'naive'"):
        P.throughput_from_json(fast, "naive")
    old = tmp_path / "train.json"
    old.write_text(json.dumps({"views_per_s": 1713.0, "device": "NVIDIA H100"}))
    assert P.throughput_from_json(old).views_per_s == 1713.0
    with pytest.raises(ValueError, match="cannot read"):
        P.throughput_from_json(tmp_path / "missing.json")


def test_cli_prints_the_table_and_json(capsys, tmp_path):
    parser = build_parser()
    args = parser.parse_args(["plan", "table1a", "--configfile", str(PAPER)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "table1a" in out and "1713" in out.replace(",", "") and "GPU-hours" in out
    args = parser.parse_args(["plan", "table1d", "--configfile", str(PAPER), "--views-per-s", "10000", "--json"])
    assert args.func(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["costs"][0]["runs"] == 10 and data["throughput"]["views_per_s"] == 10000.0
    args = parser.parse_args(["plan", "all", "--configfile", str(tmp_path / "none.yaml")])
    with pytest.raises(FileNotFoundError, match="--configfile"):
        args.func(args)


def test_packs_plan_fewer_jobs_at_the_pack_throughput(paper_cfg):
    """pack_runs: the same runs and hours' inputs, one training job per pack, the throughput of packs where measured."""
    tp = P.Throughput(20000.0, "test", eval_s_per_image=1e-4)
    (alone,) = P.plan_cost(paper_cfg, "table1a", tp)
    (packed,) = P.plan_cost({**paper_cfg, "pack_runs": 8}, "table1a", tp)
    assert alone.train_jobs == alone.runs == packed.runs == 100 and 13 <= packed.train_jobs < 20
    assert packed.train_views == alone.train_views and packed.gpu_hours == alone.gpu_hours  # same throughput given
    figures = [
        {"device": "G", "kind": "gpu", "variant": "fast", "pack_runs": 1, "views_per_s": 1000, "default": True,
         "source": "s1"},
        {"device": "G", "kind": "gpu", "variant": "fused8", "pack_runs": 8, "views_per_s": 9000, "source": "s8"},
        {"device": "C", "kind": "cpu", "variant": "fused4", "pack_runs": 4, "views_per_s": 50, "vs_runs_alone": 1.3,
         "source": "c4"},
    ]
    assert P.default_throughput(1, figures).views_per_s == 1000
    eight = P.default_throughput(8, figures)
    assert eight.views_per_s == 9000 and "packs of 8" in eight.source and "s8" in eight.source
    four = P.default_throughput(4, figures)  # no GPU figure for packs of 4: the single-run one, said so
    assert four.views_per_s == 1000 and "not measured on a GPU" in four.source and "1.30x" in four.source
    shipped = P.throughput_figures()  # the package's figures: each has its device, kind, views/s and source
    assert shipped and all({"device", "kind", "views_per_s", "source"} <= set(f) for f in shipped)
    assert sum(1 for f in shipped if f.get("default")) == 1 and P.default_throughput(1).views_per_s == P.DEFAULT_VIEWS_PER_S


def test_cli_plans_with_pack_runs(capsys, tmp_path):
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"environment": {"gpu": "H200"}, "best": {"variant": "fused32", "views_per_s_per_gpu": 9e4},
                                 "results": {"fast": {"views_per_s": 1e4}, "fused8": {"views_per_s": 5e4}}}))
    args = build_parser().parse_args(["plan", "table1a", "--configfile", str(PAPER), "--pack-runs", "8",
                                      "--throughput-json", str(bench), "--json"])
    assert args.func(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pack_runs"] == 8 and data["throughput"]["views_per_s"] == 5e4 and "fused8" in data["throughput"]["source"]
    assert data["costs"][0]["train_jobs"] < data["costs"][0]["runs"]
