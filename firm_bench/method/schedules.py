"""Learning-rate schedules (docs/METHOD.md "Training recipe"): the reference code's and the paper text's.

Each entry of ``SCHEDULES`` builds a scheduler stepped once per training
iteration: ``build(optimizer, total_steps, steps_per_epoch, optim_cfg)``
with the run config's ``optim`` section. Each entry also says what it does
with the SGD momentum (its facts in ``core/facts/method.py``, so that config
validation knows it without torch): ``cycle`` = it sets the momentum
itself from ``optim.momentum_cycle`` (null there: ``optim.momentum`` held),
``constant`` = ``optim.momentum`` is held through training.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from firm_bench.core.facts import method as facts
from firm_bench.core.registry import Registry

__all__ = ["SCHEDULES", "onecycle", "warmup_cosine"]

SCHEDULES: Registry[Callable[..., LRScheduler]] = Registry("schedule", facts=facts.SCHEDULES)


@SCHEDULES.register("onecycle")
def onecycle(optimizer: torch.optim.Optimizer, total_steps: int, steps_per_epoch: int, optim: dict) -> LRScheduler:
    """OneCycleLR(max_lr=lr, pct_start) stepped per iteration, as the reference code ran it
    (Willtl/firm util.py ``get_scheduler``: cosine annealing, PyTorch's div factors).

    Momentum: with ``optim.momentum_cycle = [base, max]`` (default [0.85, 0.95],
    PyTorch's defaults with ``cycle_momentum`` on, which the reference kept)
    OneCycleLR overwrites every step's momentum, inversely to the learning
    rate: ``max`` at step 0, cosine down to ``base`` at the peak learning rate
    (step ``pct_start * total - 1``), cosine back up to ``max`` at the end; the
    SGD ``momentum`` given to the optimiser is never used. ``null``: no
    cycling, ``optim.momentum`` held.
    """
    cycle = optim.get("momentum_cycle")
    if cycle is None:
        return OneCycleLR(optimizer, max_lr=optim["lr"], total_steps=total_steps, pct_start=optim["pct_start"],
                          cycle_momentum=False)
    base, peak = (float(v) for v in cycle)
    return OneCycleLR(optimizer, max_lr=optim["lr"], total_steps=total_steps, pct_start=optim["pct_start"],
                      cycle_momentum=True, base_momentum=base, max_momentum=peak)




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


