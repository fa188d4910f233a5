"""Lock-file GPU slots: concurrent jobs never share a GPU (fake slot counts, CPU only)."""

import json
import os
import subprocess
import sys
import time

import pytest

from firm_bench.planning import gpu_slots

HOLDER = r"""
import json, os, sys, time
from firm_bench.planning.gpu_slots import acquire_gpu_slot
n, lock_dir, hold, out = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
slot = acquire_gpu_slot(n, lock_dir, poll_s=0.02)
start = time.time()
time.sleep(hold)
end = time.time()
with open(out, "w") as fh:
    json.dump({"slot": slot, "start": start, "end": end, "cuda": os.environ["CUDA_VISIBLE_DEVICES"]}, fh)
"""


def release_held_slots() -> None:
    """Release every slot this process holds (a process exit does it for a job)."""
    import fcntl

    while gpu_slots._HELD:
        fd = gpu_slots._HELD.pop()
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _spawn(n, lock_dir, hold, out, env=None):
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(n), str(lock_dir), str(hold), str(out)],
                            env={**os.environ, **(env or {})})


@pytest.mark.parametrize("n_slots,n_jobs", [(2, 5), (3, 3), (1, 3)])
def test_concurrent_jobs_never_share_a_slot(tmp_path, n_slots, n_jobs):
    env = {"CUDA_VISIBLE_DEVICES": ""}
    env.pop("SLURM_JOB_ID", None)
    procs = [_spawn(n_slots, tmp_path / "locks", 0.4, tmp_path / f"job{i}.json", env) for i in range(n_jobs)]
    for p in procs:
        assert p.wait(timeout=60) == 0
    jobs = [json.loads((tmp_path / f"job{i}.json").read_text()) for i in range(n_jobs)]
    assert all(0 <= j["slot"] < n_slots and j["cuda"] == str(j["slot"]) for j in jobs)
    for a in jobs:
        for b in jobs:
            if a is not b and a["slot"] == b["slot"]:
                overlap = min(a["end"], b["end"]) - max(a["start"], b["start"])
                assert overlap <= 0, "two jobs held the same GPU slot at once"
    # with at least as many slots as jobs, all ran at once
    if n_jobs <= n_slots:
        assert len({j["slot"] for j in jobs}) == n_jobs


def test_slot_maps_through_existing_visible_devices(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    try:
        assert gpu_slots.acquire_gpu_slot(2, tmp_path) == 0
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "4"
        # a second acquisition in the same process takes the next slot
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
        assert gpu_slots.acquire_gpu_slot(2, tmp_path) == 1
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "6"
        with pytest.raises(TimeoutError, match="no free GPU slot"):
            gpu_slots.acquire_gpu_slot(2, tmp_path, poll_s=0.01, timeout_s=0.05)
    finally:
        release_held_slots()


def test_killed_job_releases_its_slot(tmp_path):
    proc = _spawn(1, tmp_path, 30, tmp_path / "never.json", {"CUDA_VISIBLE_DEVICES": ""})
    lock = tmp_path / "gpu0.lock"
    deadline = time.time() + 30
    while time.time() < deadline and not (lock.exists() and lock.read_text().strip()):
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    try:
        assert gpu_slots.acquire_gpu_slot(1, tmp_path, poll_s=0.01, timeout_s=5, set_env=False) == 0
    finally:
        release_held_slots()


def test_no_pinning_under_slurm_or_zero_slots(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    assert gpu_slots.acquire_gpu_slot(4, tmp_path) is None
    monkeypatch.delenv("SLURM_JOB_ID")
    assert gpu_slots.acquire_gpu_slot(0, tmp_path) is None
    assert not list(tmp_path.iterdir())
