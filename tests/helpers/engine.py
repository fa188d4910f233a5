"""Step engines for tests: a run's engine rebuilt with another graph mode, one step of an epoch as an epoch,
and the training loop before its fast path (the reference the fast path must equal bit for bit)."""

from __future__ import annotations

import torch

from firm_bench.method.losses import build_loss
from firm_bench.method.metrics import auroc
from firm_bench.method.scores import knn_mean_similarity
from firm_bench.run.engine import EpochData, EpochDraws, TrainEngine
from firm_bench.run.features import encode
from firm_bench.run.training import epoch_generator
from tests.helpers.reference import TwoViewAugment


def engine_of(t, steps: int, graph_mode: str) -> TrainEngine:
    """A ``TrainEngine`` of the ``Training`` t's model, optimiser and scheduler: ``steps`` per epoch, ``graph_mode``."""
    e = t.engine
    return TrainEngine(t.model, t.optimizer, t.scheduler, e.loss_fn, e.augment, t.opts, t.device, t.batch, steps,
                       graph_mode=graph_mode)


def one_step(ed: EpochData, step: int, batch: int) -> EpochData:
    """Step ``step`` of the epoch ``ed`` as an epoch of its own (for an engine of one step per epoch)."""
    draws = EpochDraws(*(x[step : step + 1] for x in ed.draws))
    return EpochData(ed.images, ed.labels, ed.order[step * batch : (step + 1) * batch], draws)


def reference_epoch(t, epoch: int) -> list[float]:
    """Epoch ``epoch`` of the ``Training`` t (on the CPU) as the loop ran before its fast path; its per-step losses.

    Every step draws its two views from the epoch's generator
    (``TwoViewAugment``, after the outliers and the shuffle, as the loop
    drew them), the loss checks its labels and masks each call, and each
    loss is read on the host before the step's update.
    """
    gen = epoch_generator(t.seed, epoch)
    if t.fixed_set is not None:
        images, labels = t.fixed_set
    else:
        images, kinds = t.outliers.epoch(t.data.train_ids, gen)
        labels = t.labels_of(kinds)
    order = t.shuffle(images.shape[0], gen)
    aug = TwoViewAugment(t.engine.augment.cfg, t.data.image_size, t.data.mean, t.data.std)
    loss_fn = build_loss(t.cfg, check_values=True)
    losses = []
    for step in range(t.steps_per_epoch):
        idx = order[step * t.batch : (step + 1) * t.batch]
        z1, z2 = t.model(torch.cat(aug(images[idx], gen))).z.float().chunk(2)
        loss = loss_fn(z1, z2, labels[idx])
        losses.append(loss.item())
        t.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t.optimizer.step()
        t.scheduler.step()
    return losses


@torch.no_grad()
def reference_evaluate(model, data, k: int, batch_size: int) -> float:
    """The learning curve's cos AUROC with the features gathered and searched on the CPU (before the fast path)."""
    size, mean, std, zoom = data.eval_view
    cpu = torch.device("cpu")
    bank = encode(model, data.train_ids, size, mean, std, batch_size, cpu, zoom=zoom)
    test = encode(model, data.test_images, size, mean, std, batch_size, cpu, zoom=zoom)
    sims = knn_mean_similarity(torch.nn.functional.normalize(test, dim=1), torch.nn.functional.normalize(bank, dim=1), k=k)
    return auroc(sims.numpy(), data.test_targets.numpy())
