"""The smoke preset through the SLURM profile on a real (local, single-node) SLURM.

CI starts one with `.ci/slurm/start.sh` before the tests; elsewhere this test
is skipped unless `sinfo` reports an idle node.
"""

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from firm_bench.planning import grid as fw

from tests.helpers import CONFIGS, ROOT, SNAKEFILE


def _slurm_ready() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and any(s.strip() in {"idle", "mix"} for s in out.stdout.split())


@pytest.mark.slow
@pytest.mark.skipif(not _slurm_ready(), reason="no running SLURM (start one with: bash .ci/slurm/start.sh)")
def test_the_smoke_workflow_through_the_slurm_profile_trains_its_pack_as_one_gpu_job(tmp_path):
    """The smoke config with pack_runs: 2 through the SLURM profile, to its experiment's summary (the subject is
    SLURM, not the paper outputs): its two runs train as one sbatch job with one GPU and SIGTERM before the time
    limit, the features and score jobs ask for a GPU too, and every run is recorded and scored."""
    cfg = yaml.safe_load((CONFIGS / "smoke.yaml").read_text())
    plan = fw.plan({**cfg, "pack_runs": 2})
    (pack,) = fw.packs(plan)
    cmd = [
        "timeout", "-k", "30", "420",  # -k: on SIGTERM Snakemake would wait for its jobs forever
        sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(tmp_path),
        "--profile", str(ROOT / "workflow" / "profiles" / "slurm-ci"), "--configfile", str(CONFIGS / "smoke.yaml"),
        "--config", "pack_runs=2", "--verbose", "results/summary/smoke.csv",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-8000:]
    sbatch = [line for line in log.splitlines() if "sbatch" in line and "--job-name" in line]
    training = [line for line in sbatch if "rule_train" in line]
    assert len(training) == 1 and pack.name in training[0], training or sbatch or log[-4000:]  # one job for the pack
    assert "--gpus=1" in training[0] and "--signal=TERM@300" in training[0]  # one GPU; SIGTERM before the time limit
    features = [line for line in sbatch if "rule_features" in line]
    assert len(features) == 2 and all("--gpus=1" in line for line in features), features  # a GPU rule too
    assert [line for line in sbatch if "rule_score" in line]  # and the CPU jobs went through SLURM as well
    summary = pd.read_csv(tmp_path / "results" / "summary" / "smoke.csv")
    assert len(summary) == 4 and set(summary["status"]) == {"ok"}
    for run in pack.runs:
        record = json.loads((tmp_path / run.path(plan.config["runs_root"]) / "trained.json").read_text())
        assert record["state"] == "ok" and record["speed"]["pack"]["runs"] == 2
    train_log = (tmp_path / "results" / "logs" / "train_pack" / f"{pack.name}.log").read_text()
    assert "epoch 1/1" in train_log  # control: the training job's own log
    assert "GPU slot" not in train_log  # SLURM assigns GPUs; the local slot pinning stays off
