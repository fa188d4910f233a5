"""What, besides the config, determines a run's numbers: recorded in its checkpoint, compared on resume.

The recipe (the config minus run-local keys) must match to resume at all
(``train``). These settings need not: a SLURM requeue or a pre-empted job
may land on a node with another core count or GPU, and refusing would
strand a half-trained run. They do change the rounding, though (a float
sum's order depends on the CPU thread count; bf16, channels_last, cuDNN
autotuning, CUDA graphs and torch.compile pick other kernels), so a run
resumed under other settings does not end bit for bit where an
uninterrupted run would. Training warns and records it: checkpoints carry
every resume under other settings (epoch and what changed), status.json and
trained.json list them as ``resumed_under_other_settings``, and metrics.json
labels the run with them (``records.metrics.recipe_labels``).

Left out, off the CPU: the thread count (the arithmetic runs on the device;
the host only draws random numbers, which do not depend on it).
"""

from __future__ import annotations

import torch

from firm_bench.run.engine import SpeedOptions


def numerics(device: torch.device, opts: SpeedOptions) -> dict:
    """The settings of this process that determine the numbers of a run trained on ``device`` with ``opts``."""
    rec: dict = {"device": device.type, "torch": torch.__version__, "precision": "bf16" if opts.bf16 else "fp32",
                 "eval_precision": "bf16" if opts.eval_bf16 else "fp32", "channels_last": opts.channels_last,
                 "cudnn_benchmark": opts.cudnn_benchmark, "cuda_graph": opts.cuda_graph,
                 "compile": opts.compile_mode if opts.compile else False}
    if device.type == "cpu":
        rec["threads"] = torch.get_num_threads()
    if device.type == "cuda":
        rec["gpu"] = torch.cuda.get_device_name(device)
        rec["cuda"] = torch.version.cuda
    return rec


def changes(before: dict, now: dict) -> list[str]:
    """What differs between the settings a checkpoint was trained under and this process's, e.g. ``threads 2 -> 1``."""
    return [f"{key} {before.get(key, 'not recorded')} -> {now.get(key, 'not recorded')}"
            for key in sorted(set(before) | set(now)) if before.get(key) != now.get(key)]


def describe(resumes: list[dict]) -> list[str]:
    """``resumed at epoch 2: threads 2 -> 1`` for each recorded resume under other settings."""
    return [f"resumed at epoch {r['epoch']}: {', '.join(r['changes'])}" for r in resumes]
