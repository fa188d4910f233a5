"""The step engines: the training steps of an epoch at GPU speed (the paper's recipe, fast path).

At the paper's batch of 32 images of 32 x 32 pixels a step is bound by the
host (Python dispatch, kernel launches, host-device synchronisations); each
``speed`` option removes one of those costs (what each does, and which
change no number: ``firm_bench/schema/run.schema.yaml``). ``status.json`` and
``trained.json`` record the values a run resolved, fallbacks included.

Modules: ``options`` (the resolved options, device helpers), ``draws`` (an
epoch's augmentation parameters drawn up front, ``DeviceAugment``),
``steps`` (one run's steps, ``TrainEngine``; the epoch schedule; the CUDA
graph and compile plumbing both engines share), ``fused`` (K runs of one
shape as one horizontally fused model) and ``pack`` (the steps of such a
pack, ``PackEngine``).
"""

from firm_bench.run.engine.draws import N_TRIES, DeviceAugment, EpochDraws, draw_epoch
from firm_bench.run.engine.options import SpeedOptions, resolve_speed, to_device
from firm_bench.run.engine.steps import EpochData, TrainEngine, epoch_schedule, first_non_finite

__all__ = [
    "N_TRIES",
    "DeviceAugment",
    "EpochData",
    "EpochDraws",
    "SpeedOptions",
    "TrainEngine",
    "draw_epoch",
    "epoch_schedule",
    "first_non_finite",
    "resolve_speed",
    "to_device",
]
