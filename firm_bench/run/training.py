"""One run built for training: model, optimiser, schedule, loss, augmentation, epoch data, engine.

The recipe (docs/METHOD.md "Training recipe"): SGD with momentum and weight
decay; every epoch the normal class's training images plus their synthetic
outliers (``outliers.name``) are shuffled into ``batch_size`` batches
(drop_last); each batch gets two augmented views; the loss (``loss.name``,
in the form ``loss.form`` resolves to: ``losses.build_loss``) is computed on
the two L2-normalised projections. With ``loss.id_labels`` the labels are
(M, 2) [kind, id_class]: the ID images keep their class (multi-class FIRM,
``losses.id_class_labels``). All randomness of an epoch comes from a
generator seeded by ``(seed, epoch)`` (exact resume). The loop: ``run.train``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch.optim.lr_scheduler import LRScheduler

from firm_bench.core import config as config_mod
from firm_bench.datasets import RunData
from firm_bench.method.augment import AugmentConfig
from firm_bench.method.losses import build_loss, check_label_values, id_class_labels
from firm_bench.method.metrics import auroc
from firm_bench.method.models import FirmModel, initial_model
from firm_bench.method.outliers import OUTLIERS
from firm_bench.method.schedules import SCHEDULES
from firm_bench.method.scores import knn_mean_similarity
from firm_bench.run.engine import (
    DeviceAugment,
    EpochData,
    SpeedOptions,
    TrainEngine,
    draw_epoch,
    resolve_speed,
    to_device,
)
from firm_bench.run.engine.options import cudnn_benchmark
from firm_bench.run.features import ROTATIONS, as_extracted, encode, rotate


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator of all randomness of one epoch (exact resume)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


@torch.no_grad()
def evaluate_knn(
    model: FirmModel,
    data: RunData,
    k: int,
    batch_size: int,
    device: torch.device,
    *,
    bf16: bool = False,
    rot: bool = False,
) -> float | tuple[float, float]:
    """Learning-curve AUROC: mean cosine similarity to the k nearest training features.

    Bank: ``data.train_ids``; test: ``data.test_images`` (test transform at
    ``data.eval_view``). ``rot``: also the rotation score (the k-NN cos
    averaged over the test and bank images rotated by 0/90/180/270 degrees,
    each angle against the bank at the same angle; the reference's
    ``cos_5_angled``, by which it selected its checkpoint) and return
    ``(cos, rot)``. The features stay on ``device`` and the search runs there
    (one host read), and the forward passes run as ``firm-bench features``
    runs them (NCHW weights, no cuDNN autotuning), so the curve's last point
    equals the cache's ``cos``. ``bf16``: autocast of the forward passes
    (``speed.eval_bf16``).
    """
    net = as_extracted(model)
    size, mean, std, zoom = data.eval_view
    args = (size, mean, std, batch_size, device)
    sims = []
    with cudnn_benchmark(False):
        for angle in ROTATIONS if rot else ROTATIONS[:1]:
            bank = encode(net, rotate(data.train_ids, angle), *args, keep_on_device=True, bf16=bf16, zoom=zoom)
            test = encode(net, rotate(data.test_images, angle), *args, keep_on_device=True, bf16=bf16, zoom=zoom)
            sims.append(knn_mean_similarity(
                torch.nn.functional.normalize(test, dim=1), torch.nn.functional.normalize(bank, dim=1), k=k))
    targets = data.test_targets.cpu().numpy()
    cos = auroc(sims[0].cpu().numpy(), targets)
    if not rot:
        return cos
    return cos, auroc(torch.stack(sims).mean(dim=0).cpu().numpy(), targets)


@dataclass
class Training:
    """One run's model, optimiser, schedule and data on its device (built by :func:`build_training`).

    ``prepare(epoch)`` makes an epoch's training set, shuffle and draws (host
    work, done while the device trains the previous epoch); ``engine.run_epoch``
    trains it; ``evaluate()`` is the learning-curve AUROC.
    """

    cfg: dict
    data: RunData
    device: torch.device
    opts: SpeedOptions
    model: FirmModel
    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler
    engine: TrainEngine
    outliers: object
    fixed_set: tuple[torch.Tensor, torch.Tensor] | None
    steps_per_epoch: int
    batch: int  # rows per step (paired: ids_per_step x (1 + copies))
    seed: int
    bank_images: torch.Tensor
    test_images: torch.Tensor
    id_classes: torch.Tensor | None = None  # int64 (N,) the ID images' classes with loss.id_labels, else None
    ids_per_step: int | None = None  # paired batches (optim.batching): ID images per step; None = pooled

    def shuffle(self, n_rows: int, gen: torch.Generator) -> torch.Tensor:
        """The epoch's row order, ``steps_per_epoch * batch`` indices into the epoch's training set.

        pool: a permutation of all ``n_rows`` ID + outlier rows, cut into batches (drop_last).
        paired: a permutation of the N ID images cut into groups of ``ids_per_step``; each step
        holds a group's IDs, then for each copy t the outliers made from them (rows t N + j,
        the ``OutlierSource`` pairing contract), as the reference's MVTec loader concatenated
        [B originals, B CutPaste, B scar].
        """
        if self.ids_per_step is None:
            return torch.randperm(n_rows, generator=gen)[: self.steps_per_epoch * self.batch]
        n = int(self.data.train_ids.shape[0])
        ids = torch.randperm(n, generator=gen)[: self.steps_per_epoch * self.ids_per_step]
        ids = ids.view(self.steps_per_epoch, self.ids_per_step)
        return torch.cat([ids + t * n for t in range(n_rows // n)], dim=1).flatten()

    def labels_of(self, kinds: torch.Tensor) -> torch.Tensor:
        """The loss's labels of a training set: its kinds (M,), or with ``loss.id_labels`` (M, 2) [kind, id_class]."""
        return kinds if self.id_classes is None else id_class_labels(kinds, self.id_classes)

    def prepare(self, epoch: int) -> EpochData:
        """The training set, shuffle and augmentation draws of ``epoch``, on the device.

        All randomness comes from ``epoch_generator(seed, epoch)``: outliers,
        shuffle, then the draws in the order the per-step augmentation would
        draw them (``draw_epoch``), so resuming stays exact.
        """
        gen = epoch_generator(self.seed, epoch)
        fast = self.device.type == "cuda"
        if self.fixed_set is not None:
            images, labels = self.fixed_set
        else:
            images, kinds = self.outliers.epoch(self.data.train_ids, gen)
            labels = self.labels_of(kinds)
            _check_labels(labels)
        images, labels = to_device(images, self.device, fast), to_device(labels, self.device, fast)
        order = self.shuffle(images.shape[0], gen)
        size = self.data.image_size
        draws = draw_epoch(gen, self.steps_per_epoch, self.batch, self.engine.augment.cfg, size, size)
        return EpochData(images, labels, to_device(order, self.device, fast), draws.to(self.device, non_blocking=fast))

    def evaluate(self, data: RunData | None = None, rot: bool = False) -> float | tuple[float, float]:
        """Learning-curve AUROC of the current model (k-NN cosine, ``eval.k``); with ``rot`` also the rotation score.

        ``data``: evaluate on another bank and test set (benchmarks: CIFAR-sized
        sets) instead of the run's own.
        """
        k, batch = self.cfg["eval"]["k"], int(self.cfg["features"]["batch_size"])
        # the run's own: its bank and test images, on the device when resident
        d = replace(self.data, train_ids=self.bank_images, test_images=self.test_images) if data is None else data
        return evaluate_knn(self.model, d, k, batch, self.device, bf16=self.opts.eval_bf16, rot=rot)

    def speed_record(self) -> dict:
        """The resolved ``speed`` options and what became of the graph and compile attempts."""
        return {**self.opts.record(), "status": dict(self.engine.status)}


def _check_labels(labels: torch.Tensor) -> None:
    """Once per training set: the loss's label check (the loss skips it per step).

    labels: (M,) kinds or (M, 2) [kind, id_class] (``losses.check_label_values``).
    """
    try:
        check_label_values(labels)
    except ValueError as exc:
        raise ValueError(f"training labels: {exc}") from None


def build_training(cfg: dict, data: RunData, device: torch.device, opts: SpeedOptions | None = None) -> Training:
    """Model, optimiser, schedule, loss, augmentation and engine of a validated run config."""
    opts = opts if opts is not None else resolve_speed(cfg["speed"], device)
    seed = int(cfg["seed"])
    model = initial_model(cfg["model"], int(cfg["seed"])).to(device)
    if opts.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optim_cfg = cfg["optim"]
    optimizer = torch.optim.SGD(
        model.parameters(), lr=optim_cfg["lr"], momentum=optim_cfg["momentum"], weight_decay=optim_cfg["weight_decay"]
    )
    outliers = OUTLIERS.get(cfg["outliers"]["name"])(cfg["outliers"], data.image_size)
    id_classes = data.train_labels if cfg["loss"]["id_labels"] else None
    if id_classes is not None and id_classes.shape[0] != data.train_ids.shape[0]:
        raise ValueError(f"loss.id_labels: RunData.train_labels {tuple(id_classes.shape)} must label every training "
                         f"image ({data.train_ids.shape[0]})")
    gen0 = epoch_generator(seed, 0)
    fixed_set = None
    if outliers.deterministic:
        images, kinds = outliers.epoch(data.train_ids.to(device), gen0)  # rotations made once, on the device
        fixed_set = (images, kinds if id_classes is None else id_class_labels(kinds, id_classes))
        _check_labels(fixed_set[1])
    n_train = (fixed_set[0] if fixed_set else outliers.epoch(data.train_ids, gen0)[0]).shape[0]
    batch = int(optim_cfg["batch_size"])
    ids_per_step = None
    if config_mod.protocol(cfg).batching == "paired":
        n_ids = int(data.train_ids.shape[0])
        if not getattr(outliers, "paired", False) or n_train % n_ids:
            raise config_mod.ConfigError(
                f"optim.batching=paired ({'the default of dataset ' + repr(cfg['dataset']['name']) if config_mod.setting(cfg, 'optim.batching') == 'auto' else 'set'}) "
                f"needs outliers made from the ID images, each ID's copies aligned with it (rot, cutpaste, scar, "
                f"cutpaste_scar, nsa, ref_cutpaste_scar, ref_nsa); outliers.name={cfg['outliers']['name']!r} is not: "
                "set optim.batching=pool or another outliers.name")
        ids_per_step, batch = batch, batch * (n_train // n_ids)
        steps_per_epoch = n_ids // ids_per_step
    else:
        steps_per_epoch = n_train // batch
    if steps_per_epoch == 0:
        what = f"{data.train_ids.shape[0]} ID images" if ids_per_step else f"{n_train} images with outliers"
        raise config_mod.ConfigError(
            f"optim.batch_size={ids_per_step or batch} is larger than the training set ({what}); lower optim.batch_size"
        )
    epochs = int(optim_cfg["epochs"])
    scheduler = SCHEDULES.get(optim_cfg["schedule"])(optimizer, epochs * steps_per_epoch, steps_per_epoch, optim_cfg)
    loss_fn = build_loss(cfg, check_values=False)  # labels checked once per epoch (_check_labels)
    augment = DeviceAugment(AugmentConfig.from_dict(cfg["augment"]), data.image_size, data.mean, data.std, device)
    engine = TrainEngine(model, optimizer, scheduler, loss_fn, augment, opts, device, batch, steps_per_epoch)
    bank, test = data.train_ids.to(device), data.test_images.to(device)
    return Training(cfg, data, device, opts, model, optimizer, scheduler, engine, outliers, fixed_set,
                    steps_per_epoch, batch, seed, bank, test, id_classes, ids_per_step)




def epoch_rows(t: Training) -> int:
    """Training rows of one epoch of a run: its N ID images and their outliers, N (1 + copies) (outliers contract)."""
    if t.fixed_set is not None:
        return int(t.fixed_set[0].shape[0])
    return int(t.data.train_ids.shape[0]) * (1 + int(t.outliers.copies))
