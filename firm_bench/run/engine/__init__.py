"""The step engines: an epoch's training steps at GPU speed (the ``speed`` options: ``schema/run.schema.yaml``).

``options`` (the resolved options, device helpers), ``draws`` (an epoch's
augmentation drawn up front), ``steps`` (one run's ``TrainEngine``, the
epoch schedule, the CUDA-graph and compile plumbing), ``fused`` and
``pack`` (K runs of one shape as one fused model, its ``PackEngine``).
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
