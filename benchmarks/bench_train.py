"""Measure training throughput of the current training loop (not a test).

Runs ``firm_bench.run.train.train`` for a few epochs on the embedded data with a
preset's model and recipe, and reports steps/s, views/s (two views per
sample), seconds per epoch extrapolated to one CIFAR-10 class (5000 images x
4 with rotations), the projected time of a full run of the preset, and peak
memory. Example (the README quotes its output):

    python benchmarks/bench_train.py --preset paper --epochs 20 --device cuda
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time

import torch

from firm_bench.core import config
from firm_bench.datasets import load_run_data
from firm_bench.method.outliers import OUTLIERS
from firm_bench.run.train import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--samples-per-epoch", type=int, default=20000, help="for the extrapolation (CIFAR-10 class: 20000)")
    args = ap.parse_args()

    full = config.resolve(args.preset, overrides=args.overrides)
    cfg = config.resolve(
        args.preset,
        overrides=[
            "dataset.name=fmnist_mini", f"device={args.device}", f"optim.epochs={args.epochs}",
            f"eval.every={args.epochs}", f"checkpoint.every={args.epochs}", *args.overrides,
        ],
    )
    data = load_run_data(cfg)
    n = OUTLIERS.get(cfg["outliers"]["name"])(cfg["outliers"], data.image_size).epoch(
        data.train_ids, torch.Generator().manual_seed(0))[0].shape[0]
    steps = (n // cfg["optim"]["batch_size"]) * args.epochs
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = train(cfg, tmp, progress=False, data=data)
        wall = time.perf_counter() - t0
    train_s = result.elapsed_s
    per_step = train_s / steps
    spe = full["optim"]["epochs"]
    steps_full_epoch = args.samples_per_epoch // full["optim"]["batch_size"]
    report = {
        "device": str(torch.cuda.get_device_name() if torch.cuda.is_available() and args.device != "cpu" else "cpu"),
        "preset": args.preset,
        "batch_size": cfg["optim"]["batch_size"],
        "width": cfg["model"]["width"],
        "steps": steps,
        "train_seconds_incl_evals": round(train_s, 2),
        "wall_seconds": round(wall, 2),
        "steps_per_s": round(steps / train_s, 1),
        "views_per_s": round(2 * cfg["optim"]["batch_size"] * steps / train_s, 1),
        "s_per_epoch_cifar10_class": round(per_step * steps_full_epoch, 2),
        "projected_full_run_hours": round(per_step * steps_full_epoch * spe / 3600, 2),
        "peak_gpu_mem_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
