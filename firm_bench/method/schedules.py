"""Learning-rate schedules (METHOD.md "Training recipe"): the reference code's and the paper text's.

Each entry of ``SCHEDULES`` builds a scheduler stepped once per training
iteration: ``build(optimizer, total_steps, steps_per_epoch, optim_cfg)``
with the run config's ``optim`` section.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from firm_bench.core.registry import Registry

__all__ = ["SCHEDULES", "onecycle", "warmup_cosine"]

SCHEDULES: Registry[Callable[..., LRScheduler]] = Registry("schedule", catalog="optim.schedule")


@SCHEDULES.register("onecycle")
def onecycle(optimizer: torch.optim.Optimizer, total_steps: int, steps_per_epoch: int, optim: dict) -> LRScheduler:
    """OneCycleLR(max_lr=lr, pct_start) stepped per iteration, as the reference code ran it
    (cosine annealing, momentum cycled 0.85-0.95, PyTorch's div factors)."""
    return OneCycleLR(optimizer, max_lr=optim["lr"], total_steps=total_steps, pct_start=optim["pct_start"])


@SCHEDULES.register("warmup_cosine")
def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, steps_per_epoch: int, optim: dict
) -> LRScheduler:
    """Linear warm-up for ``warmup_epochs`` then cosine annealing to ``lr_min`` (the paper's App. A)."""
    warm = int(round(optim["warmup_epochs"] * steps_per_epoch))
    floor = optim["lr_min"] / optim["lr"]

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return LambdaLR(optimizer, factor)
