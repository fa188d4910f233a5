"""The smoke preset through the SLURM profile on a real (local, single-node) SLURM.

CI starts one with `.ci/slurm/start.sh` before the tests; elsewhere this test
is skipped unless `sinfo` reports an idle node.
"""

import shutil
import subprocess
import sys

import pandas as pd
import pytest

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
    summary = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert len(summary) == 4 and set(summary["status"]) == {"ok"}
    train_log = (tmp_path / "results/runs/fmnist_mini/0/firm/rot/smoke/seed0/logs/train.log").read_text()
    assert "GPU slot" not in train_log  # SLURM assigns GPUs; the local slot pinning stays off
