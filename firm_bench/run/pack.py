"""A pack: K >= 2 runs of one shape trained as one horizontally fused model.

Each run is built as alone (``train.build_training``: its data, outliers,
draws, loss, optimiser, scheduler, all randomness from its own
``epoch_generator``); :class:`Pack` fuses their models
(``engine.fused.fuse``), binds each run's model to its slices, and trains
them with one ``FusedSGD`` and a ``PackEngine``. With ``speed.pack_kernels:
per_run`` (the CPU default) every run ends with the numbers of training it
alone, bit for bit; with ``grouped`` (the CUDA default) with the same
arithmetic in another summation order. The loop, records and fault policy
are the trainer's (``run.train``), the same for a run alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from firm_bench.method.metrics import auroc
from firm_bench.method.scores import knn_mean_similarity
from firm_bench.run.engine import EpochData, epoch_schedule
from firm_bench.run.engine.fused import FusedFirmModel, FusedSGD, fuse
from firm_bench.run.engine.options import autocast_bf16, cudnn_benchmark
from firm_bench.run.engine.pack import PackEngine
from firm_bench.run.engine.steps import GraphMode
from firm_bench.run.features import ROTATIONS, rotate
from firm_bench.run.training import Training, epoch_rows

__all__ = ["Pack", "evaluate_pack"]


class Pack:
    """The trainer's engine for K >= 2 runs (``ts``, built by ``build_training`` on one device).

    ``run_epoch(eds)``: one epoch of the runs whose ``eds[k]`` is given, each
    with its own scheduler's per-step lr and momentum (``epoch_schedule``);
    returns the losses (steps, K) on the device. ``fused``, ``sgd``,
    ``engine``: the fused model, its optimiser and step engine; ``graph_mode``: as ``TrainEngine``'s.
    """

    def __init__(self, ts: Sequence[Training], graph_mode: GraphMode | None = None) -> None:
        self.ts = list(ts)
        t0 = self.ts[0]
        kernels = t0.opts.pack_kernels
        self.fused = fuse([t.model for t in self.ts])
        self.fused.bind([t.model for t in self.ts], grads=kernels == "per_run")
        wds = [float(t.cfg["optim"]["weight_decay"]) for t in self.ts]
        self.sgd = FusedSGD.of(self.fused, weight_decay=wds[0] if len(set(wds)) == 1 else wds)
        self.engine = PackEngine(self.fused, self.sgd, [t.engine for t in self.ts],
                                 [t.id_classes is not None for t in self.ts], t0.opts, t0.device, t0.batch,
                                 t0.steps_per_epoch, epoch_rows(t0), kernels, graph_mode)
        self.status = self.engine.status

    def run_epoch(self, eds: Sequence[EpochData | None]) -> torch.Tensor:
        lr = torch.zeros((self.ts[0].steps_per_epoch, len(self.ts)))
        momentum = torch.zeros_like(lr)
        for k, (t, ed) in enumerate(zip(self.ts, eds)):
            if ed is not None:
                lrs, moms = epoch_schedule(t.optimizer, t.scheduler, t.steps_per_epoch)
                lr[:, k], momentum[:, k] = torch.tensor(lrs), torch.tensor(moms)
        return self.engine.run_epoch(eds, lr, momentum)

    def set_live(self, live: Sequence[bool]) -> None:
        self.engine.set_live(live)

    def load(self, k: int, state: dict) -> None:
        """Resume run k from its checkpoint (the state dicts of a run trained alone)."""
        t = self.ts[k]
        self.fused.load_run_state(k, state["model"])
        t.optimizer.load_state_dict(state["optimizer"])
        self.sgd.load_run_state(k, state["optimizer"])
        t.optimizer.state.clear()  # the momentum lives in the fused SGD
        t.scheduler.load_state_dict(state["scheduler"])

    def model_state(self, k: int) -> dict:
        return self.fused.state_dict_of(k)

    def optimizer_state(self, k: int) -> dict:
        return self.sgd.state_dict_of(k, self.ts[k].optimizer.param_groups[0])

    def evaluate(self, which: Sequence[int], rot: Sequence[bool]) -> dict[int, tuple[float, float]]:
        return evaluate_pack(self.fused, self.ts, which, rot)

    @torch.no_grad()
    def drop(self, failed: Sequence[int], good: int | None) -> None:
        """Overwrite the slices of the ``failed`` runs with a copy of run ``good``'s (finite, never used again).

        A failed run is frozen before its non-finite step's update, but its
        forward passes of the rest of that epoch may have left non-finite
        BatchNorm statistics; as inert copies no kernel meets them again.
        """
        if good is None:
            return
        for t in [*self.fused.parameters(), *self.fused.buffers(), *self.sgd.bufs]:
            if t is self.fused.live or t.dim() == 0:
                continue
            view = t.unflatten(0, (self.fused.runs, -1))
            for k in failed:
                view[k].copy_(view[good])


@dataclass
class _Eval:
    index: int
    t: Training
    select_by_rot: bool


@torch.no_grad()
def _fused_encode(net: FusedFirmModel, images: Sequence[torch.Tensor], means: Sequence[torch.Tensor],
                  stds: Sequence[torch.Tensor], size: int, zoom: float, batch_size: int, device: torch.device,
                  bf16: bool) -> list[torch.Tensor]:
    """Encoder features (N, D) of each run's own images (K tensors of N images, kept on ``device``), one fused forward per chunk.

    As ``features.encode`` run by run: the test transform of each run's
    chunk (its own normalisation), eval mode, float32 features.
    """
    from firm_bench.method.augment import test_transform

    n = images[0].shape[0]
    out: list[list[torch.Tensor]] = [[] for _ in images]
    for i in range(0, n, batch_size):
        x = torch.stack([test_transform(im[i : i + batch_size].to(device), size, m, s, zoom)
                         for im, m, s in zip(images, means, stds)])
        with autocast_bf16(device, bf16):
            f = net.features(x)
        for k in range(len(images)):
            out[k].append(f[k].float())
    return [torch.cat(parts) if parts else torch.empty(0, net.feature_dim, device=device) for parts in out]


@torch.no_grad()
def evaluate_pack(fused: FusedFirmModel, ts: Sequence[Training], which: Sequence[int],
                  rot: Sequence[bool]) -> dict[int, tuple[float, float]]:
    """Learning-curve AUROC of the runs ``which`` of a pack of ``ts``: {index: (cos, select value)}.

    The select value is the rotation score where ``rot[index]`` (as
    ``train.evaluate_knn``), else the cos AUROC. per_run kernels, or runs whose
    bank and test sizes differ: each run's own ``Training.evaluate`` (its
    model view). grouped: the runs' forward passes fused; the k-NN search and
    AUROC per run.
    """
    ms = [_Eval(k, ts[k], rot[k]) for k in which]
    if not ms:
        return {}
    sizes = {(m.t.bank_images.shape[0], m.t.test_images.shape[0]) for m in ms}
    if ts[0].opts.pack_kernels == "per_run" or len(sizes) > 1:
        out = {}
        for m in ms:
            value = m.t.evaluate(rot=m.select_by_rot)
            out[m.index] = value if isinstance(value, tuple) else (value, value)
        return out
    t0 = ms[0].t
    device, opts = t0.device, t0.opts
    size, _, _, zoom = t0.data.eval_view
    batch = int(t0.cfg["features"]["batch_size"])
    net = fused
    conv = next((mod.weight for mod in fused.modules() if isinstance(mod, torch.nn.Conv2d)), None)
    if conv is not None and not conv.is_contiguous():  # as features.as_extracted: NCHW weights
        import copy

        net = copy.deepcopy(fused).to(memory_format=torch.contiguous_format)
    was_training = net.training
    net.eval()
    filler = ms[0]
    by_run = {m.index: m for m in ms}
    full = [by_run.get(k, filler) for k in range(fused.runs)]  # runs not evaluated: any images (ignored)
    means = [torch.as_tensor(tuple(m.t.data.mean), dtype=torch.float32, device=device) for m in full]
    stds = [torch.as_tensor(tuple(m.t.data.std), dtype=torch.float32, device=device) for m in full]
    angles = ROTATIONS if any(m.select_by_rot for m in ms) else ROTATIONS[:1]
    sims: dict[int, list[torch.Tensor]] = {m.index: [] for m in ms}
    args = (means, stds, size, zoom, batch, device, opts.eval_bf16)
    with cudnn_benchmark(False):
        for angle in angles:
            banks = _fused_encode(net, [rotate(m.t.bank_images, angle) for m in full], *args)
            tests = _fused_encode(net, [rotate(m.t.test_images, angle) for m in full], *args)
            for m in ms:
                if angle and not m.select_by_rot:
                    continue
                k = m.index
                sims[k].append(knn_mean_similarity(torch.nn.functional.normalize(tests[k], dim=1),
                                                   torch.nn.functional.normalize(banks[k], dim=1), k=m.t.cfg["eval"]["k"]))
    net.train(was_training)
    out = {}
    for m in ms:
        targets = m.t.data.test_targets.cpu().numpy()
        cos = auroc(sims[m.index][0].cpu().numpy(), targets)
        out[m.index] = (cos, auroc(torch.stack(sims[m.index]).mean(dim=0).cpu().numpy(), targets)) if m.select_by_rot \
            else (cos, cos)
    return out
