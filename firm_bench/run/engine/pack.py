"""The steps of an epoch of a pack: K runs trained as one horizontally fused model.

``PackEngine.run_epoch`` trains one epoch of every run of a pack that trains
this epoch (the others are masked out: ``FusedFirmModel.live``) and returns
the per-step, per-run losses (steps, K) on the device. Each run keeps what a
run trained alone has (``firm_bench.run.training.Training``): its own epoch data
(training set with its outliers, shuffle, augmentation draws), its loss, its
scheduler's learning rate and momentum step by step, its weight decay. What
is shared is the step: one fused model, one SGD update (``FusedSGD``) over
all K slices.

Two kernel choices (``speed.pack_kernels``, resolved in ``SpeedOptions``):

- ``grouped`` (HFTA, Wang et al., MLSys 2021): one operator per layer for
  all K runs (grouped convolutions, batched matrix products, BatchNorm over
  K C channels), the K runs' augmentations as one batch (their draws side by
  side, ``EpochDraws.concat``; every op is per sample), each run's loss on
  its slice of the projections, the losses summed (``masked_total``), one
  backward pass, one SGD update. K times fewer kernel launches than K runs
  one after another, which is what a GPU needs at batch 32; with
  ``speed.cuda_graph`` the whole fused step is one CUDA graph (captured and
  checked as ``TrainEngine``'s, with the same fallback to eager steps).
  Same arithmetic as alone in another summation order (rounding; see
  tests/run/test_fused.py and docs/SPEED.md "Fused training").
- ``per_run``: run k's forward and backward run through run k's own model,
  whose parameters and buffers are views of its slices of the fused tensors
  (``FusedFirmModel.bind``), with its own ``TrainEngine.loss``: the kernels
  of a run trained alone, so the same numbers bit for bit (the CPU default:
  a pack changes no number there); the SGD update is still the fused one
  (torch's arithmetic, bit for bit). Eager steps only.

Faults stay local: a run whose loss turns non-finite is frozen at that step,
before its update (``masked_total`` clears its ``live`` flag on the device;
``per_run`` skips it on the host), and the others train on; the caller reads
the losses once per epoch and records the failed run as a run alone would be
(first non-finite step and value).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal, Sequence

import torch
from torch import Tensor

from firm_bench.run.engine.draws import DeviceAugment, EpochDraws
from firm_bench.run.engine.fused import FusedFirmModel, FusedLoss, FusedSGD, masked_total, pack
from firm_bench.run.engine.options import PACK_KERNELS, PinnedStage, SpeedOptions, autocast_bf16, cudnn_benchmark, to_device
from firm_bench.run.engine.steps import EpochData, GraphedSteps, GraphMode, TrainEngine

PackKernels = Literal["grouped", "per_run"]


class PackEngine(GraphedSteps):
    """The training steps of a pack of K runs: ``run_epoch(epochs, lr, momentum) -> losses (steps, K)``.

    fused: the K runs' models fused (``fuse``) and bound to ``members``'
    models (``FusedFirmModel.bind(..., grads=kernels == "per_run")``);
    sgd: its ``FusedSGD``; members: each run's own ``TrainEngine`` (its loss,
    augmentation, model view, scheduler); id_labels: per run, whether its
    loss takes (B, 2) [kind, id_class] labels; rows: the training rows of an
    epoch (every run: equal). ``graph_mode`` as ``TrainEngine``'s; grouped
    kernels only.
    """

    what = " of the pack"

    def __init__(
        self,
        fused: FusedFirmModel,
        sgd: FusedSGD,
        members: Sequence[TrainEngine],
        id_labels: Sequence[bool],
        opts: SpeedOptions,
        device: torch.device,
        batch: int,
        steps: int,
        rows: int,
        kernels: PackKernels,
        graph_mode: GraphMode | None = None,
    ) -> None:
        if kernels not in PACK_KERNELS:
            raise ValueError(f"speed.pack_kernels={kernels!r}; valid: auto, {', '.join(PACK_KERNELS)}")
        self.fused, self.sgd, self.members, self.net = fused, sgd, list(members), fused
        self.runs = fused.runs
        self.id_labels = [bool(x) for x in id_labels]
        self.opts, self.device, self.kernels = opts, device, kernels
        self.batch, self.steps, self.rows = int(batch), int(steps), int(rows)
        self.loss = FusedLoss([m.loss_fn for m in self.members])
        want = graph_mode or ("capture" if opts.cuda_graph else "off")
        self._plumb(want if kernels == "grouped" else "off", opts.compile and kernels == "grouped")
        self.status["pack_kernels"] = kernels
        self.augment: DeviceAugment | None = None
        if kernels == "grouped":
            first = self.members[0].augment
            self.augment = DeviceAugment(first.cfg, first.size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), device)
            # per sample: run k's 2B views take run k's own normalisation
            two_b = 2 * self.batch
            self.augment.mean = torch.cat([m.augment.mean.expand(two_b, -1, -1, -1) for m in self.members])
            self.augment.std = torch.cat([m.augment.std.expand(two_b, -1, -1, -1) for m in self.members])
        self.fwd: Callable[[Tensor], Any] = fused
        if self.status["compile"] == "pending":
            try:
                self.fwd = torch.compile(fused, mode=opts.compile_mode)
            except Exception as exc:  # noqa: BLE001 - any failure means: run eagerly
                self._compile_failed(exc)
        self._buffers: dict[str, Tensor] = {}

    # ------------------------------------------------------------------ inputs

    def _eager(self) -> None:
        self.fwd = self.fused

    def _stack(self, epochs: Sequence[EpochData | None], lr: Tensor, momentum: Tensor) -> dict[str, Any]:
        """The K runs' epochs as one set of device tensors (the graph's buffers: allocated once, refilled).

        images (K M, 3, S, S): run k's rows at [k M, (k+1) M); labels (K M, 2)
        [kind, id_class] (-1 where a run has no classes); order (steps, K B):
        step s's rows of run k at columns [k B, (k+1) B), offset by k M;
        draws: every run's side by side; lr, momentum (steps, K). A run that
        does not train this epoch (None) keeps its slots as they were.
        """
        K, M, B, S = self.runs, self.rows, self.batch, self.steps
        st = self._buffers
        ref = next(e for e in epochs if e is not None)
        if not st:
            st.update(
                images=torch.zeros((K * M, *ref.images.shape[1:]), dtype=ref.images.dtype, device=self.device),
                labels=torch.full((K * M, 2), -1, dtype=torch.int64, device=self.device),
                order=torch.zeros((S, K * B), dtype=torch.int64, device=self.device),
                schedule=torch.zeros((2, S, K), dtype=torch.float32, device=self.device),  # lr, momentum
                stage=PinnedStage((2, S, K), torch.float32, self.device),
                losses=torch.zeros((S, K), dtype=torch.float32, device=self.device),
                step=torch.zeros(1, dtype=torch.int64, device=self.device),
            )
            st["draws"] = EpochDraws.concat([ref.draws] * K).to(self.device)
            self._fixed: list[Tensor | None] = [None] * K
        for k, ed in enumerate(epochs):
            if ed is None:
                continue
            if ed.images.shape[0] != M:
                raise ValueError(f"pack run {k}: {ed.images.shape[0]} training rows, the pack's runs have {M}")
            rows = slice(k * M, (k + 1) * M)
            if self._fixed[k] is not ed.images:  # a deterministic outlier set is copied once
                st["images"][rows].copy_(ed.images, non_blocking=True)
                labels = ed.labels if ed.labels.dim() == 2 else ed.labels.unsqueeze(1)
                st["labels"][rows, : labels.shape[1]].copy_(labels, non_blocking=True)
                self._fixed[k] = ed.images
            st["order"][:, k * B : (k + 1) * B].copy_(ed.order.view(S, B) + k * M, non_blocking=True)
            cols = slice(k * 2 * B, (k + 1) * 2 * B)
            st["draws"].crop[..., cols].copy_(ed.draws.crop, non_blocking=True)
            st["draws"].factors[:, cols].copy_(ed.draws.factors, non_blocking=True)
            st["draws"].order[:, cols].copy_(ed.draws.order, non_blocking=True)
            st["draws"].sigma[:, cols].copy_(ed.draws.sigma, non_blocking=True)
            st["draws"].apply[..., cols].copy_(ed.draws.apply, non_blocking=True)
        # (2, steps, K) host values in one copy from a reused pinned buffer (no host sync per epoch)
        st["stage"].copy_to(st["schedule"], torch.stack([lr, momentum]).to(torch.float32))
        st["lr"], st["momentum"] = st["schedule"][0], st["schedule"][1]
        return st

    # ------------------------------------------------------------------ one grouped step

    def _views(self, st: dict[str, Any], idx: Tensor, step: Tensor | int) -> Tensor:
        """The K runs' two augmented views, (K, 2B, 3, S, S): run k's [view 1; view 2] of its B images."""
        K, B = self.runs, self.batch
        x = st["images"].index_select(0, idx).view(K, B, *st["images"].shape[1:])
        draws = st["draws"].select(step) if isinstance(step, Tensor) else st["draws"].at(step)
        both = self.augment.views(torch.cat([x, x], dim=1).flatten(0, 1), draws)
        return both.view(K, 2 * B, *both.shape[1:])

    def _labels(self, st: dict[str, Any], idx: Tensor) -> list[Tensor]:
        lab = st["labels"].index_select(0, idx).view(self.runs, self.batch, 2)
        return [lab[k] if self.id_labels[k] else lab[k, :, 0] for k in range(self.runs)]

    def _grouped_step(self, st: dict[str, Any], step: Tensor | int) -> None:
        """One fused step: every live run's loss, one backward pass, one SGD update (device buffers only)."""
        s = step if isinstance(step, Tensor) else None
        if s is not None:
            idx = st["order"].index_select(0, s)[0]
            lr, momentum = st["lr"].index_select(0, s)[0], st["momentum"].index_select(0, s)[0]
        else:
            idx, lr, momentum = st["order"][step], st["lr"][step], st["momentum"][step]
        x = self._views(st, idx, step)
        if self.opts.channels_last:  # packed (2B, 3K, S, S) in NHWC, as the fused convolutions are
            x = pack(x).contiguous(memory_format=torch.channels_last)
        with autocast_bf16(self.device, self.opts.bf16):
            z = self._compiled(self.fwd, self.fused, x).z
        per_run = self.loss.per_run(z, self._labels(st, idx))
        if s is not None:
            st["losses"].index_copy_(0, s, per_run.detach().view(1, -1))
        else:
            st["losses"][step] = per_run.detach()
        masked_total(per_run, self.fused.live).backward()
        self.sgd.step(lr, momentum, self.fused.live)

    # ------------------------------------------------------------------ epochs

    def set_live(self, live: Sequence[bool]) -> None:
        """The runs that train from now on (the others' slices stay as they are), copied to the device."""
        mask = torch.tensor([bool(x) for x in live], dtype=torch.bool)
        self.fused.live.copy_(to_device(mask, self.device, True), non_blocking=True)

    def run_epoch(self, epochs: Sequence[EpochData | None], lr: Tensor, momentum: Tensor) -> Tensor:
        """Train one epoch of the runs whose ``epochs[k]`` is given (and that are live).

        lr, momentum: (steps, K) host tensors, each run's values at each step
        (its scheduler stepped through the epoch: ``TrainEngine._schedule``).
        Returns float32 (steps, K) losses on the device (a run that did not
        train: zeros; a frozen run: its losses up to and including the first
        non-finite one).
        """
        if len(epochs) != self.runs:
            raise ValueError(f"run_epoch: {len(epochs)} epochs for {self.runs} runs")
        with cudnn_benchmark(self.opts.cudnn_benchmark or torch.backends.cudnn.benchmark):
            if self.kernels == "per_run":
                return self._per_run_epoch(epochs, lr, momentum)
            st = self._stack(epochs, lr, momentum)
            if self._graphed():
                if self._begin_graph():
                    for step in range(self.steps):
                        self._run_body(step)
                    return st["losses"].clone()
            for step in range(self.steps):
                self.fused.zero_grad(set_to_none=True)
                self._grouped_step(st, step)
            return st["losses"].clone()

    def _per_run_epoch(self, epochs: Sequence[EpochData | None], lr: Tensor, momentum: Tensor) -> Tensor:
        """Each live run through its own model view and ``TrainEngine.loss``; one fused SGD update per step."""
        B = self.batch
        losses = torch.zeros((self.steps, self.runs), dtype=torch.float32, device=self.device)
        live = self.fused.live
        on = [ed is not None and bool(live[k]) for k, ed in enumerate(epochs)]
        lr_d, mom_d = lr.to(self.device, torch.float32), momentum.to(self.device, torch.float32)
        for step in range(self.steps):
            self.fused.zero_bound_grads()
            for k, ed in enumerate(epochs):
                if not on[k]:
                    continue
                idx = ed.order[step * B : (step + 1) * B]
                loss = self.members[k].loss(ed.images[idx], ed.labels[idx], ed.draws.at(step))
                losses[step, k] = loss.detach()
                if not math.isfinite(float(loss.detach())):  # frozen before its update; the others go on
                    on[k] = False
                    live[k] = False
                    continue
                loss.backward()
            # every run training: the update without the mask's extra ops (the same arithmetic)
            self.sgd.step(lr_d[step], mom_d[step], None if all(on) else live)
        return losses

    # ------------------------------------------------------------------ the graphed step

    def _state(self) -> list[Tensor]:
        return [*self.fused.parameters(), *self.fused.buffers(), *self.sgd.bufs, self.sgd.steps]

    def _params(self) -> list[Tensor]:
        return list(self.fused.parameters())

    @property
    def _step(self) -> Tensor:
        return self._buffers["step"]

    def _body(self) -> None:
        self._grouped_step(self._buffers, self._buffers["step"])

    def _begin_graph(self) -> bool:
        """Capture at the first epoch (checked against eager steps); False: train this epoch eagerly."""
        if self.graph_mode == "capture" and self._graph is None:
            try:
                self._capture(self._buffers["losses"])
            except Exception as exc:  # noqa: BLE001 - any failure: eager steps
                self._fallback(f"{type(exc).__name__}: {exc}")
        return not self.status["cuda_graph"].startswith("fallback")
