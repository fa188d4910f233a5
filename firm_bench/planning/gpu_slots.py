"""Pin each running job to its own GPU with lock-file slots.

Snakemake's ``--resources gpu=4`` only *counts* GPUs: it starts at most four
GPU jobs at once but does not say which GPU each one gets, so without help
every job would land on GPU 0. A job calls :func:`acquire_gpu_slot` before
CUDA is initialised: it takes an exclusive ``flock`` on the first free file
of ``gpu0.lock ... gpu{n-1}.lock`` in a machine-wide directory and sets
``CUDA_VISIBLE_DEVICES`` to that GPU. The lock is held until the process
exits (the kernel releases it even on SIGKILL), so two concurrent jobs never
share a slot and a crashed job never leaks one.

Inside a SLURM job (``SLURM_JOB_ID`` set) nothing is done: SLURM already
assigned the GPU through ``--gpus``.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path

_HELD: list[int] = []  # file descriptors kept open for the life of the process


def default_lock_dir() -> Path:
    user = os.environ.get("USER") or str(os.getuid())
    return Path(tempfile.gettempdir()) / f"firm-bench-gpu-slots-{user}"


def count_gpus() -> int:
    """Number of NVIDIA GPUs on this machine (nvidia-smi), 0 when there is none."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def acquire_gpu_slot(
    n_gpus: int,
    lock_dir: str | Path | None = None,
    poll_s: float = 0.5,
    timeout_s: float | None = None,
    set_env: bool = True,
) -> int | None:
    """Take a free slot (waiting if all are busy) and return its GPU index.

    One slot per GPU: a job has its GPU to itself (several small runs share
    a GPU as one pack, ``firm-bench train-pack``, not as processes: four
    processes on an H100 gave no more views/s than one). Sets
    ``CUDA_VISIBLE_DEVICES`` to that GPU (an entry of an already set
    ``CUDA_VISIBLE_DEVICES`` list, else the index). Returns None and does
    nothing when ``n_gpus`` is 0 or inside a SLURM job.
    """
    if n_gpus <= 0 or os.environ.get("SLURM_JOB_ID"):
        return None
    lock_dir = Path(lock_dir or default_lock_dir())
    lock_dir.mkdir(parents=True, exist_ok=True)
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        for gpu in range(n_gpus):
            fd = os.open(lock_dir / f"gpu{gpu}.lock", os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            _HELD.append(fd)
            if set_env:
                os.environ["CUDA_VISIBLE_DEVICES"] = visible[gpu] if gpu < len(visible) else str(gpu)
            return gpu
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU slot among {n_gpus} in {lock_dir} after {timeout_s} s")
        time.sleep(poll_s)
