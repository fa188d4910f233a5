"""The smoke preset end to end through Snakemake's CLI on the CPU: the session's one smoke run (conftest.py
``smoke_run``) and what is read from it (outputs, Snakemake's report, no-op rerun, status, packed runs alike), a
killed workflow resuming, and a pack of four on the mini config."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile

import pandas as pd
import pytest
import torch
import yaml

from firm_bench.core import lock as locks
from firm_bench.core import rundir as runs
from firm_bench.planning import grid as fw
from tests.helpers.snakemake import CONFIGS, SNAKEFILE, snakemake

SMOKE_SUMMARY = "results/summary/smoke.csv"  # the experiment's scores: the target of tests about running, not the paper
#: the smoke config's recipe: the smoke preset and what its run_overrides change (config.recipe_name)
def smoke_run_of(config) -> tuple[str, str]:
    """The recipe of a smoke workflow config and the run directory of its FIRM run (config.recipe_name: a config
    whose run_overrides differ trains into another directory)."""
    recipe = next(iter(fw.plan(config).runs)).recipe
    return recipe, f"results/runs/fmnist_mini/0/firm/rot/{recipe}/seed0"


SMOKE_RECIPE, SMOKE_RUN = smoke_run_of(fw.load_workflow_config("smoke"))  # one of the smoke config's two runs


@pytest.mark.slow
def test_smoke_workflow_end_to_end(smoke_run):
    summary = pd.read_csv(smoke_run / "results" / "summary.csv", dtype={"cls": str})
    assert len(summary) == 4  # 2 runs (firm, ntxent) x (cos k=5, kde)
    assert set(summary["status"]) == {"ok"} and summary["auroc"].between(0, 1).all()
    assert set(summary["loss"]) == {"firm", "ntxent"} and set(summary["score"]) == {"cos", "kde"}
    assert (summary["schedule"] == "onecycle").all() and (summary["checkpoint"] == "last").all()
    claims = (smoke_run / "results" / "claims.md").read_text()  # the all target checks the paper's claims
    assert "Stand-in data only" in claims and "| not run: " in claims
    table = (smoke_run / "results" / "summary" / "smoke.md").read_text()
    assert f"fmnist_mini firm rot {SMOKE_RECIPE} cos k=5" in table and "checkpoint: last" in table
    curves = pd.read_csv(smoke_run / "results" / "summary" / "smoke_curves.csv")
    assert len(curves) == 4 and set(curves["epoch"]) == {0, 1}  # 0: the untrained model (eval.at_start)
    run = smoke_run / SMOKE_RUN
    for name in ["config.yaml", "versions.json", "status.json", "curve.csv", "trained.json", "metrics.json",
                 "checkpoints/last.pt", "features/test/cache.pt", "scores/test/cos_k5.json", "logs/train.log"]:
        assert (run / name).exists(), name
    log = (run / "logs" / "train.log").read_text()  # progress lines for log files, not a bar
    assert re.search(r"^firm-bench: epoch 1/1 loss \d+\.\d{4} cos_k5 0\.\d{4} \d+ views/s elapsed \S+ eta 0:00:00$", log,
                     flags=re.M), log


@pytest.mark.slow
def test_snakemakes_own_report_holds_the_paper_outputs(smoke_run, tmp_path):
    """Snakemake's report of the registered paper tables and figures, beside ours (written outside the run)."""
    snakemake(smoke_run, "--report", tmp_path / "report.zip", "--configfile", CONFIGS / "smoke.yaml")
    with zipfile.ZipFile(tmp_path / "report.zip") as z:
        names = z.namelist()
    assert any(n.endswith("report.html") for n in names), names[:20]
    assert any("table5.md" in n for n in names) and any("fig4.png" in n for n in names), names
    assert any(n.endswith("claims.md") for n in names) and any(n.endswith("claims_forest.png") for n in names)


@pytest.mark.slow
def test_a_finished_workflow_has_nothing_to_do_here_or_on_another_machine(smoke_run):
    out = snakemake(smoke_run, "--cores", "2", "--configfile", CONFIGS / "smoke.yaml", "-n").stdout
    assert "Nothing to be done" in out
    # nor on another machine: GPU slots and threads are not params (rerun triggers)
    out = snakemake(smoke_run, "--cores", "2", "--configfile", CONFIGS / "smoke.yaml", "-n",
                    "--config", "gpu_slots=4", "--set-threads", "train=2", "score=2").stdout
    assert "Nothing to be done" in out, out[-3000:]
    # and firm-bench status reads its runs as done
    assert _states(CONFIGS / "smoke.yaml", smoke_run) == ["done"] * 2


def _states(config, workdir) -> list[str]:
    """``firm-bench status CONFIG --json``: the state of each run the config plans, under ``workdir``."""
    proc = subprocess.run([sys.executable, "-m", "firm_bench.cli", "status", str(config), "--runs-root",
                           str(workdir / "results" / "runs"), "--json"], capture_output=True, text=True, check=True)
    return [r["state"] for r in json.loads(proc.stdout)]


@pytest.mark.slow
def test_killed_workflow_resumes_training_from_its_checkpoint(workdir):
    """Snakemake SIGKILLed during a training job (checkpointing every epoch): its training job dies with it, and
    the rerun (--unlock, --rerun-incomplete) resumes the run from its checkpoint to a learning curve with every
    epoch once and a scored run. Its target is the experiment's summary: no paper tables or figures."""
    cfg = yaml.safe_load((CONFIGS / "smoke.yaml").read_text())
    cfg["run_overrides"]["optim.epochs"] = 4
    cfg["run_overrides"]["checkpoint.every"] = 1
    cfg["experiments"]["smoke"]["losses"] = ["firm"]
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(workdir), SMOKE_SUMMARY, "--cores", "1",
           "--configfile", str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ckpt = workdir / smoke_run_of(cfg)[1] / "checkpoints/last.pt"
    deadline = time.time() + 240
    epoch = 0
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists():
            try:
                epoch = torch.load(ckpt, weights_only=False)["epoch"]
            except Exception:  # being replaced right now
                epoch = 0
            if epoch >= 2:
                break
        time.sleep(0.1)
    assert proc.poll() is None, "the workflow finished before it could be killed"
    trainer = runs.read_json(ckpt.parent.parent / runs.LOCK_FILE)["pid"]  # the training job holds its run
    os.kill(proc.pid, signal.SIGKILL)  # Snakemake alone: its training job must not outlive it
    proc.wait()
    deadline = time.time() + 30
    while locks.pid_alive(trainer) and time.time() < deadline:
        time.sleep(0.1)
    assert not locks.pid_alive(trainer), "the training job outlived the killed Snakemake"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever else was left in its group
    assert 2 <= epoch < 4

    # a SIGKILLed Snakemake leaves its directory lock behind: --unlock, then rerun
    snakemake(workdir, "--unlock", "--configfile", path)
    snakemake(workdir, SMOKE_SUMMARY, "--cores", "1", "--configfile", path, "--rerun-incomplete")
    log = (ckpt.parent.parent / "logs" / "train.log").read_text()
    assert "resuming" in log and "from its checkpoint at epoch" in log
    curve = pd.read_csv(ckpt.parent.parent / "curve.csv")
    assert list(curve["epoch"]) == [0, 1, 2, 3, 4]
    summary = pd.read_csv(workdir / SMOKE_SUMMARY)
    assert set(summary["status"]) == {"ok"}


def _assert_packed_equals_alone(alone, packed, target, n_runs, pack_size):
    """Every run's metrics, and the target summary, equal between the workflow trained alone and packed."""
    runs_dirs = sorted(p.parent.relative_to(alone) for p in alone.glob("results/runs/**/metrics.json"))
    assert len(runs_dirs) == n_runs
    for run in runs_dirs:
        a, b = (json.loads((root / run / "metrics.json").read_text()) for root in (alone, packed))
        assert a["scores"] == b["scores"] and a["aulc"] == b["aulc"] and a["final_auroc"] == b["final_auroc"]
        assert a["scores"] and all(s["status"] == "ok" for s in a["scores"].values())
        pack = json.loads((packed / run / "trained.json").read_text())["speed"]["pack"]
        assert pack["runs"] == pack_size and pack["kernels"] == "per_run"
    columns = ["dataset", "cls", "loss", "score", "k", "auroc", "aulc", "status"]
    pd.testing.assert_frame_equal(pd.read_csv(alone / target)[columns], pd.read_csv(packed / target)[columns])


def _packed(workdir, targets, config, *extra):
    targets = [targets] if isinstance(targets, str) else targets
    out = snakemake(workdir, *targets, "--cores", "2", "--configfile", config, "--config", "pack_runs=4", *extra)
    assert "train_pack_0" in out.stdout + out.stderr and not list((workdir / "results/runs").rglob("logs/train.log"))


@pytest.mark.slow
def test_packed_smoke_runs_give_the_same_metrics_as_the_runs_alone(smoke_run, tmp_path):
    """pack_runs: 4 trains the grid's compatible runs as packs (one job each); every run's metrics equal those of
    the session's smoke workflow (pack_runs: 1; on the CPU a pack uses per_run kernels: the numbers of training
    alone, bit for bit), and firm-bench status reads packed runs as any other."""
    target = SMOKE_SUMMARY
    _packed(tmp_path, target, CONFIGS / "smoke.yaml")
    _assert_packed_equals_alone(smoke_run, tmp_path, target, n_runs=2, pack_size=2)
    assert _states(CONFIGS / "smoke.yaml", tmp_path) == ["done"] * 2


#: mini: its Table 1 experiment alone (two classes x two seeds of FIRM: one pack of four), 2 of its 6 epochs (a
#: checkpoint and a learning-curve point at each: the second epoch continues from the first's state), with the
#: smoke preset's narrow network (CI time: a pack's grouping and arithmetic do not depend on the width).
MINI_OVERRIDES = {"optim.epochs": 2, "eval.every": 1, "checkpoint.every": 1, "model.width": 0.0625,
                  "model.head_layers": 2, "model.head_hidden": 32, "model.proj_dim": 16}


def _curve(run_dir) -> pd.DataFrame:
    """curve.csv without its wall-clock column (the rest is the numbers of training: loss, AUROC per epoch)."""
    return pd.read_csv(run_dir / "curve.csv").drop(columns=["elapsed_s"])


@pytest.mark.slow
def test_a_packed_mini_pack_of_four_trains_its_runs_bit_for_bit_as_alone(tmp_path):
    """The planner packs the mini Table 1's four runs (classes x seeds) into one training job, which ends with each
    run's weights, optimizer state and learning curve (evaluated and checkpointed every epoch) equal bit for bit to
    the same run trained alone by the workflow (what its features, scores and metrics are computed from: the
    packed smoke test above follows them through to the metrics), and firm-bench status reads packed runs as done.
    The target is the runs' training (their trained.json): scoring is not this test's subject."""
    cfg = yaml.safe_load((CONFIGS / "mini.yaml").read_text())
    cfg["experiments"] = {"table1": cfg["experiments"]["table1"]}
    cfg["run_overrides"] = {**cfg.get("run_overrides", {}), **MINI_OVERRIDES}
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(cfg))
    plan = fw.plan(cfg)
    run_dirs = [run.path(plan.config["runs_root"]) for run in plan.experiments["table1"]]
    assert len(run_dirs) == 4
    targets = [f"{d}/trained.json" for d in run_dirs]
    alone, packed = tmp_path / "alone", tmp_path / "packed"
    snakemake(alone, *targets, "--cores", "2", "--configfile", path)
    _packed(packed, targets, path)
    for run in run_dirs:
        a, b = (torch.load(root / run / "checkpoints" / "last.pt", weights_only=False) for root in (alone, packed))
        assert a["epoch"] == b["epoch"] == 2 and a["model"].keys() == b["model"].keys()
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), run
        oa, ob = a["optimizer"]["state"], b["optimizer"]["state"]
        assert oa.keys() == ob.keys() and all(torch.equal(oa[i]["momentum_buffer"], ob[i]["momentum_buffer"])
                                              for i in oa)
        curve = _curve(alone / run)
        assert list(curve["epoch"]) == [0, 1, 2]
        pd.testing.assert_frame_equal(curve, _curve(packed / run), check_exact=True)
        pack = json.loads((packed / run / "trained.json").read_text())["speed"]["pack"]
        assert pack["runs"] == 4 and pack["kernels"] == "per_run"
    assert _states(path, packed) == ["done"] * 4
