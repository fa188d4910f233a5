"""Tests of benchmarks/bench_fast.py: both paths measure, the report derives every figure, failures exit non-zero."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time

import pytest
import torch

from tests.helpers import ROOT

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: one CPU thread for these small runs


SCRIPT = ROOT / "benchmarks" / "bench_fast.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_fast", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SMALL = ["--preset", "smoke", "--device", "cpu", "--epochs", "1", "--warmup-epochs", "0", "--workers", "0",
         "--eval-bank", "64", "--eval-test", "128", "--set", "features.batch_size=64"]


def test_naive_and_fast_workers_measure_the_same_recipe(bench):
    args = bench.parse_args(SMALL)
    naive = bench.run_naive(args)
    fast = bench.run_fast(args, "fast")
    for r in (naive, fast):
        assert r["steps"] == 12 and r["batch_size"] == 64 and r["train_s"] > 0 and r["eval_s"] > 0
        assert r["eval_images"] == 64 + 128 and 0.0 <= r["eval_auroc"] <= 1.0 and r["peak_rss_mb"] > 0
    assert fast["speed"]["status"]["cuda_graph"] == "off" and not fast["speed"]["bf16"]
    s = bench.summarize(fast, args)
    assert s["views_per_s"] == pytest.approx(2 * 64 * 12 / fast["train_s"], rel=1e-3)
    per_epoch = 20000 / (s["views_per_s"] / 2) + fast["eval_s"] / 192 * 15000 / 1  # smoke: eval.every = 1
    assert s["s_per_epoch_cifar10_class"] == pytest.approx(per_epoch, rel=1e-3)
    assert s["gpu_hours_per_run"] == pytest.approx(per_epoch * 2000 / 3600, rel=1e-2)
    assert s["table1a_firm_gpu_hours"] == pytest.approx(50 * s["gpu_hours_per_run"], rel=1e-2)
    packed = bench.summarize(fast, args, pack=4)  # the same device throughput shared by 4 runs
    assert packed["gpu_hours_per_run"] == s["gpu_hours_per_run"] and packed["run_wall_hours"] == pytest.approx(
        4 * s["gpu_hours_per_run"], rel=1e-2)
    assert packed["views_per_s_per_run"] == pytest.approx(s["views_per_s"] / 4, rel=1e-3) and packed["runs"] == 4


@pytest.mark.parametrize("variant", ["fused2", "fused2-grouped"])
def test_fused_worker_measures_a_pack(bench, variant):
    args = bench.parse_args(SMALL)
    r = bench.run_fused(args, variant)
    assert r["runs"] == 2 and r["steps"] == 2 * 12 and r["batch_size"] == 64 and r["train_s"] > 0
    assert r["pack_kernels"] == ("grouped" if variant.endswith("grouped") else "per_run")
    assert r["eval_images"] == 2 * (64 + 128) and 0.0 <= r["eval_auroc"] <= 1.0 and r["peak_rss_mb"] > 0
    s = bench.summarize(r, args, pack=2)
    assert s["views_per_s"] == pytest.approx(2 * 64 * 24 / r["train_s"], rel=1e-3)
    assert s["views_per_s_per_run"] == pytest.approx(s["views_per_s"] / 2, rel=1e-3)


def _fake(variant: str, views: float) -> dict:
    return {"variant": variant, "steps": 100, "train_s": 2 * 32 * 100 / views, "eval_s": 1.0, "eval_images": 15000,
            "batch_size": 32, "eval_every": 10, "peak_rss_mb": 100.0, "host_syncs_per_epoch": 0}


def test_report_ratios_table_json_and_exit_status(bench, monkeypatch, capsys, tmp_path):
    def fake_run(args, variant):
        if variant == "fused2":
            raise bench.BenchError("fused2: out of memory")
        r = _fake(variant, {"naive": 1000.0, "fast": 10000.0}[variant])
        return {**r, **bench.summarize(r, args)}

    monkeypatch.setattr(bench, "run_variant", fake_run)
    out = tmp_path / "b.json"
    assert bench.main(["--device", "cpu", "--variants", "naive,fast", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    fast = report["results"]["fast"]
    assert fast["views_per_s_vs_naive"] == 10.0 and fast["epoch_speedup_vs_naive"] > 5
    assert report["best"]["variant"] == "fast" and report["best"]["views_per_s_per_gpu"] == 10000.0
    assert "x naive" in capsys.readouterr().err
    assert bench.main(["--device", "cpu", "--variants", "naive,fast,fused2"]) == 1  # a failed variant: exit 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["results"]["fused2"]["error"] == "fused2: out of memory"
    assert "failed: fused2" in captured.err


def test_rounds_alternate_the_variants_and_report_each_ones_fastest(bench, monkeypatch, tmp_path):
    calls, views = [], {"naive": iter([900.0, 1000.0, 950.0]), "fast": iter([4000.0, 2000.0, 3000.0])}

    def fake_run(args, variant):
        calls.append(variant)
        r = _fake(variant, next(views[variant]))
        return {**r, **bench.summarize(r, args)}

    monkeypatch.setattr(bench, "run_variant", fake_run)
    out = tmp_path / "b.json"
    assert bench.main(["--device", "cpu", "--variants", "naive,fast", "--rounds", "3", "--out", str(out)]) == 0
    assert calls == ["naive", "fast"] * 3
    results = json.loads(out.read_text())["results"]
    assert results["naive"]["views_per_s"] == 1000.0 and results["fast"]["views_per_s"] == 4000.0
    assert results["fast"]["rounds_views_per_s"] == [4000.0, 2000.0, 3000.0]
    assert results["fast"]["views_per_s_vs_naive"] == 4.0 and len(results["fast"]["rounds_load_1min"]) == 3
    with pytest.raises(SystemExit):
        bench.main(["--rounds", "0"])


def test_bad_invocations_exit_with_a_message(bench, capsys):
    assert bench.main(["--device", "cpu", "--variants", "naive,turbo,fused0,pack4,streams4"]) == 2
    assert "unknown variant(s) turbo, fused0, pack4, streams4" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        bench.main(["--fast-only", "--naive-only"])
    assert info.value.code == 2
    if not torch.cuda.is_available():
        assert bench.main(["--device", "cuda"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err


def test_default_variants(bench):
    assert bench.default_variants("cpu") == ["naive", "off", "fast", "fused4", "fused8"]
    assert {"fast-eager", "fused4", "fused8", "fused16", "fused32"} <= set(bench.default_variants("cuda"))
    assert bench.fused_variant("fused16") == (16, None) and bench.fused_variant("fused4-grouped") == (4, "grouped")
    assert bench.fused_variant("fused0") is None and bench.fused_variant("fast") is None


# ---------------------------------------------------------------- benchmarks/gpu_check.sh

GPU_CHECK = ROOT / "benchmarks" / "gpu_check.sh"


def _gpu_check(out, *args, budget=300):
    proc = subprocess.run(["bash", str(GPU_CHECK), "--out", str(out), "--budget-s", str(budget), *args],
                          capture_output=True, text=True, timeout=budget + 60)
    report = out / "gpu_check.json"
    return proc, (json.loads(report.read_text()) if report.is_file() else None)


@pytest.mark.slow  # about 20 s on 2 idle cores: bench_fast's processes import torch
def test_gpu_check_dry_mode_on_the_cpu_writes_one_json(tmp_path):
    """--device cpu: the same two steps at a tiny size: the CUDA tests collected (and skipped), bench_fast measured
    for a pack (fused2) on the smoke recipe; one JSON with the steps, their commands and limits, and ok."""
    proc, check = _gpu_check(tmp_path, "--device", "cpu", "--tests", "tests/run/test_train.py", "--variants", "fused2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [p.name for p in tmp_path.iterdir()] == ["gpu_check.json"]  # one file
    assert check["ok"] and check["device"] == "cpu" and "dry run" in check["mode"] and check["budget_s"] == 300
    tests, bench = check["steps"]["cuda_tests"], check["steps"]["bench_fast"]
    assert "-k cuda" in tests["command"] and tests["counts"]["skipped"] >= 1 and not tests["counts"].get("passed")
    assert tests["limit_s"] == 100 and tests["seconds"] <= tests["limit_s"]
    assert "--preset smoke" in bench["command"] and "--device cpu" in bench["command"]
    assert bench["measured"] == ["fused2"] and not bench["failed"] and not bench["not_reached"]
    fused = bench["report"]["results"]["fused2"]
    assert fused["runs"] == 2 and fused["views_per_s"] > 0
    assert tests["seconds"] + bench["seconds"] <= check["seconds"] <= check["budget_s"]


@pytest.mark.slow
def test_gpu_check_without_cuda_fails_saying_why_with_the_paper_plan(tmp_path):
    """--device cuda on a machine without CUDA: the paper recipe's variants were asked for, none measured, ok false,
    exit 1; the CUDA tests that skipped count against it."""
    proc, check = _gpu_check(tmp_path, "--tests", "tests/core/test_registry.py", budget=120)  # no CUDA test there
    if torch.cuda.is_available():
        pytest.skip("CUDA is available: the check would run for real")
    assert proc.returncode == 1 and check is not None and not check["ok"]
    bench = check["steps"]["bench_fast"]
    assert "--preset paper" in bench["command"] and "--device cuda" in bench["command"]
    assert check["variants"] == ["naive", "fast", "fused4", "fused8", "fused16", "fused32"]
    assert bench["exit"] == 2 and "CUDA is not available" in bench["output_tail"] and not bench["measured"]
    assert bench["not_reached"] == check["variants"] and not check["steps"]["cuda_tests"]["ok"]


def test_gpu_check_refuses_bad_usage(tmp_path):
    for args, message in ((["--device", "tpu"], "use cuda or cpu"), (["--budget-s", "8m"], "whole number"),
                          (["--frobnicate"], "unknown argument")):
        proc = subprocess.run(["bash", str(GPU_CHECK), "--out", str(tmp_path), *args], capture_output=True, text=True)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
    proc = subprocess.run(["bash", str(GPU_CHECK)], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and "--out DIR" in proc.stderr
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- benchmarks/bench_workflow.py


@pytest.fixture(scope="module")
def bench_workflow():
    spec = importlib.util.spec_from_file_location("bench_workflow", ROOT / "benchmarks" / "bench_workflow.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _trained(workdir, run, seconds, state="ok"):
    path = workdir / "results" / "runs" / run / "trained.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"state": state, "train_seconds": seconds}))


JOB_TABLE = "Job stats:\njob                 count\n----------------  -------\nall          1\nfeatures  2\nscore   4\ntrain  2\n" \
            "total  9\n\nReasons:"


def test_workflow_overhead_is_wall_time_over_training_time_per_core(bench_workflow, tmp_path):
    _trained(tmp_path, "a/seed0", 30.0)
    _trained(tmp_path, "a/seed1", 50.0)
    _trained(tmp_path, "b/seed0", 999.0, state="failed")  # not a trained run
    train = bench_workflow.training_seconds(tmp_path)
    assert train == {"results/runs/a/seed0": 30.0, "results/runs/a/seed1": 50.0}
    figures = bench_workflow.overhead(60.0, train, cores=2)
    assert figures["train_s"] == 80.0 and figures["ideal_s"] == 40.0 and figures["overhead"] == 1.5
    assert figures["within_target"] and not bench_workflow.overhead(60.1, train, cores=2)["within_target"]
    with pytest.raises(ValueError, match="no trained run"):
        bench_workflow.overhead(60.0, {}, cores=2)
    assert bench_workflow.job_stats(JOB_TABLE) == {"all": 1, "features": 2, "score": 4, "train": 2}
    assert bench_workflow.job_stats("Nothing to be done.") == {}


def test_workflow_benchmark_times_the_run_and_reads_its_records(bench_workflow, monkeypatch, tmp_path):
    """The run mode's wiring, with a stand-in for Snakemake that trains two runs of 1 s each in 0.3 s of wall."""
    def fake_snakemake(workdir, args, *extra):
        assert not extra and args.cores == 2
        time.sleep(0.3)
        _trained(workdir, "x/seed0", 1.0)
        _trained(workdir, "x/seed1", 1.0)
        return subprocess.CompletedProcess([], 0, JOB_TABLE, "")

    monkeypatch.setattr(bench_workflow, "snakemake", fake_snakemake)
    out = tmp_path / "w.json"
    assert bench_workflow.main(["--cores", "2", "--workdir", str(tmp_path / "run"), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["mode"] == "run" and report["runs"] == 2 and report["train_s"] == 2.0 and report["ideal_s"] == 1.0
    assert 0.3 <= report["wall_s"] < 5 and report["overhead"] == pytest.approx(report["wall_s"], abs=0.01)
    assert report["training_jobs"] == 2 and report["other_jobs"] == 6 and report["target"] == 1.5
    with pytest.raises(SystemExit):  # a used folder: the benchmark runs a workflow from nothing
        bench_workflow.main(["--workdir", str(tmp_path / "run")])


@pytest.mark.slow
def test_workflow_benchmark_dry_mode_plans_the_mini_workflow(tmp_path):
    from firm_bench.planning import grid

    out = tmp_path / "dry.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_workflow.py"), "--dry", "--out", str(out)],
                   check=True, capture_output=True, text=True, timeout=300)
    report = json.loads(out.read_text())
    mini = grid.plan(grid.load_workflow_config(ROOT / "workflow" / "config" / "mini.yaml"))
    assert report["mode"].startswith("dry") and "overhead" not in report  # nothing timed
    assert report["training_jobs"] == report["jobs"]["train"] == len(mini.runs)
    assert report["other_jobs"] == sum(report["jobs"].values()) - report["jobs"]["all"] - len(mini.runs) > 0
