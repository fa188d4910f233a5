"""The step engine: the training steps of an epoch at GPU speed (the paper's recipe, fast path).

At the paper's batch of 32 images of 32 x 32 pixels a GPU does little
arithmetic per step; the step is bound by the host: Python dispatch, kernel
launches and host-device synchronisations. Each speed-up below removes one of
those costs. Each is a key of the run config's ``speed`` section (defaults,
descriptions: ``firm_bench/schema/run.schema.yaml``), can be switched off,
and the values a run resolved (``auto`` made concrete, fallbacks included)
are written to its ``status.json`` and ``trained.json``.

- ``resident_data``: the epoch's training set (ID images plus rotations,
  uint8) lives on the training device; a deterministic outlier set (``rot``,
  ``none``) is built there once, not copied every epoch. The bank and test
  images of the learning curve live there too.
- ``predraw``: every random number of an epoch (crop boxes, jitter factors and
  orders, blur sigmas, coin flips) is drawn on the CPU at the epoch's start,
  in exactly the order the per-step augmentation draws them, and moved to the
  device in one copy (:func:`draw_epoch`); the augmentation then runs on the
  device with no host input, both views as one batch (:class:`DeviceAugment`).
  Same numbers as off.
  Off, every step makes about twenty small host-to-device copies, and each
  waits for the GPU to finish all queued work.
- ``fast_loss``: the loss skips its per-step reads of label and mask values
  (``ContrastiveLoss(check_values=False)``); the labels are checked once per
  epoch. Same numbers.
- ``check_loss_every``: steps between host reads of the loss (each waits for
  the device). 0 = once per epoch: the per-step losses stay on the device and
  the first non-finite one is reported at the epoch's end (the run then stops
  as failed, with epoch, step and value, as before). 1 = every step.
- ``fast_eval``: the learning-curve k-NN evaluation keeps features on the
  device and searches there; only the similarities come back. Its forward
  passes run as the feature extraction's (NCHW, no autotuning, float32
  unless ``eval_bf16``), so the curve's last point is the cache's ``cos``.
- ``bf16``: bfloat16 autocast of the model's forward and backward; the loss
  is computed in float32 from the projections. Not exact (activations keep 8
  mantissa bits); tests bound the loss difference.
- ``channels_last``: NHWC memory format for the model and its inputs
  (tensor-core convolutions). Same arithmetic, other kernels.
- ``cudnn_benchmark``: cuDNN times its convolution algorithms for the fixed
  shapes of the training step and keeps the fastest (set around the steps
  only; other kernels, same arithmetic).
- ``cuda_graph``: the whole step (batch gather, augmentation, forward, loss,
  backward, SGD update) is captured once as a CUDA graph and replayed; the
  learning rate and momentum of each step are device tensors filled per epoch
  from the scheduler. Before use, two replayed steps are compared with the
  same two steps run eagerly from the same state; a failure or mismatch falls
  back to eager steps with a warning (recorded). Needs ``predraw`` and
  ``fast_loss``.
- ``compile``: ``torch.compile`` of the model and of the predrawn
  augmentation (``compile_mode``); falls back to eager, with a warning, where
  compilation fails.

Exactness on the CPU: ``resident_data``, ``predraw``, ``fast_loss``,
``check_loss_every`` and ``fast_eval`` change no number; a run with them on
equals a run with them off bit for bit (tests/test_speed.py).

Modules: ``options`` (the resolved options, device helpers), ``draws``
(an epoch's augmentation parameters, ``DeviceAugment``), ``steps`` (the
steps of an epoch, the CUDA graph), ``fused`` (K runs of one shape as one
horizontally fused model: grouped convolutions, batched heads, per-run SGD)
and ``pack`` (the steps of an epoch of such a pack, ``PackEngine``). The
learning-curve evaluation, with ``fast_eval`` on or off, is
``firm_bench.run.train.evaluate_knn``.
"""

from firm_bench.core.errors import NonFiniteLoss
from firm_bench.run.engine.draws import N_TRIES, DeviceAugment, EpochDraws, draw_epoch
from firm_bench.run.engine.options import COMPILE_MODES, SpeedOptions, resolve_speed, to_device
from firm_bench.run.engine.steps import EpochData, TrainEngine, first_non_finite

__all__ = [
    "COMPILE_MODES",
    "N_TRIES",
    "DeviceAugment",
    "EpochData",
    "EpochDraws",
    "NonFiniteLoss",
    "SpeedOptions",
    "TrainEngine",
    "draw_epoch",
    "first_non_finite",
    "resolve_speed",
    "to_device",
]
