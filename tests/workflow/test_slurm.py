"""The smoke preset through the SLURM profile on a real (local, single-node) SLURM.

CI starts one with `.ci/slurm/start.sh` before the tests; elsewhere this test
is skipped unless `sinfo` reports an idle node.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

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
def test_smoke_workflow_through_the_slurm_profile(tmp_path):
    cmd = [
        "timeout", "-k", "30", "420",  # -k: on SIGTERM Snakemake would wait for its jobs forever
        sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(tmp_path),
        "--profile", str(ROOT / "workflow" / "profiles" / "slurm-ci"),
        "--configfile", str(CONFIGS / "smoke.yaml"), "--verbose",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-8000:]
    assert "sbatch" in log and "--gpus=1" in log  # GPU rules asked SLURM for a GPU
    assert "--signal=TERM@300" in log  # and SIGTERM before the time limit (the training rule's slurm_extra)
    summary = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert len(summary) == 4 and set(summary["status"]) == {"ok"}
    train_log = (tmp_path / "results/runs/fmnist_mini/0/firm/rot/smoke/seed0/logs/train.log").read_text()
    assert "GPU slot" not in train_log  # SLURM assigns GPUs; the local slot pinning stays off


@pytest.mark.slow
@pytest.mark.skipif(not _slurm_ready(), reason="no running SLURM (start one with: bash .ci/slurm/start.sh)")
def test_a_pack_is_one_slurm_job_with_one_gpu(tmp_path):
    """pack_runs: 2 on the smoke grid: its two runs train as one sbatch job (one GPU, the signal), each recorded."""
    cfg = yaml.safe_load((CONFIGS / "smoke.yaml").read_text())
    plan = fw.plan({**cfg, "pack_runs": 2})
    (pack,) = fw.packs(plan)
    targets = [str(Path(run.path(plan.config["runs_root"])) / "trained.json") for run in pack.runs]
    cmd = [
        "timeout", "-k", "30", "300", sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(tmp_path),
        "--profile", str(ROOT / "workflow" / "profiles" / "slurm-ci"), "--configfile", str(CONFIGS / "smoke.yaml"),
        "--config", "pack_runs=2", "--verbose", *targets,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-8000:]
    sbatch = [line for line in log.splitlines() if "sbatch" in line and "--job-name" in line]
    assert len(sbatch) == 1 and "--gpus=1" in sbatch[0] and "--signal=TERM@300" in sbatch[0], sbatch or log[-4000:]
    for target in targets:
        record = json.loads((tmp_path / target).read_text())
        assert record["state"] == "ok" and record["speed"]["pack"]["runs"] == 2
