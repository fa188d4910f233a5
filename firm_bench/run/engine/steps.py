"""The training steps of an epoch: eager, or one CUDA graph replayed step after step; the epoch schedule."""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Literal, NamedTuple, Sequence

import torch
from torch import Tensor

from firm_bench.run.engine.draws import DeviceAugment, EpochDraws
from firm_bench.run.engine.options import PinnedStage, SpeedOptions, autocast_bf16, cudnn_benchmark


class EpochData(NamedTuple):
    """What one epoch trains on, on the training device.

    images: uint8 (M, 3, S, S); labels: int64 (M,) or, with loss.id_labels,
    (M, 2) [kind, id_class] (rows gathered on dim 0); order: int64 (steps * B,)
    the shuffled indices; draws: the epoch's augmentation parameters.
    """

    images: Tensor
    labels: Tensor
    order: Tensor
    draws: EpochDraws


def epoch_schedule(optimizer: torch.optim.Optimizer, scheduler: Any, steps: int) -> tuple[list[float], list[float]]:
    """The next epoch's per-step lr and momentum: ``scheduler`` stepped through the epoch.

    Leaves scheduler and optimizer as an eager epoch of ``steps`` steps leaves them.
    """
    group = optimizer.param_groups[0]
    lrs, moms = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "scheduler.step() before optimizer.step()"
        for _ in range(steps):
            lrs.append(float(group["lr"]))
            moms.append(float(group.get("momentum", 0.0)))
            scheduler.step()
    return lrs, moms


def first_non_finite(losses: Tensor) -> tuple[int, float] | None:
    """(0-based index, value) of the first non-finite entry of a host tensor, or None."""
    bad = (~torch.isfinite(losses)).nonzero()
    if bad.numel() == 0:
        return None
    i = int(bad[0, 0])
    return i, float(losses[i])


GraphMode = Literal["off", "capture", "body"]


class GraphedSteps:
    """The CUDA-graph and torch.compile plumbing of a step engine (``TrainEngine``, ``PackEngine``).

    The subclass sets ``net`` (the module a step trains), ``opts``,
    ``device`` and ``_step`` (the (1,) int64 step index its ``_body`` reads)
    and defines ``_body()`` (one step from device buffers only: the graph's
    content), ``_state()`` / ``_params()`` (restored and compared by the
    capture check) and ``_eager()`` (its compiled functions back to eager).
    graph_mode: "capture" records the step as a CUDA graph at the first
    epoch; "body" runs the very same body eagerly (tests: the graph's
    arithmetic, on the CPU); "off" the plain step.
    """

    what = ""  # how warnings name the engine

    def _plumb(self, graph_mode: GraphMode, compile_on: bool) -> None:
        self.graph_mode: GraphMode = graph_mode
        self.status: dict[str, str] = {"cuda_graph": "pending" if graph_mode == "capture" else graph_mode,
                                       "compile": "pending" if compile_on else "off"}
        self._graph: Any = None

    def _compile_failed(self, exc: BaseException) -> None:
        warnings.warn(f"firm-bench: torch.compile{self.what} failed ({type(exc).__name__}: {exc}); training eagerly",
                      stacklevel=2)
        self._eager()
        self.status["compile"] = f"failed, eager: {type(exc).__name__}: {str(exc)[:200]}"

    def _compiled(self, fn: Callable[..., Any], eager: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``; when ``fn`` is a compiled function that fails, eager from then on."""
        if fn is eager:
            return eager(*args)
        try:
            out = fn(*args)
            self.status["compile"] = "on"
            return out
        except Exception as exc:  # noqa: BLE001 - any failure means: run eagerly
            self._compile_failed(exc)
            return eager(*args)

    def _graphed(self) -> bool:
        return self.graph_mode != "off" and not self.status["cuda_graph"].startswith("fallback")

    def _run_body(self, step: int) -> None:
        self._step.fill_(step)
        if self._graph is not None:
            self._graph.replay()
        else:
            self.net.zero_grad(set_to_none=True)
            self._body()

    def _capture(self, losses: Tensor) -> None:
        """Capture the step as a CUDA graph, checked against eager steps (:func:`capture_checked`)."""

        def set_graph(graph: Any) -> None:
            self._graph = graph

        failed = capture_checked(self._state(), self._params(), losses, self._body, self._run_body,
                                 lambda: self.net.zero_grad(set_to_none=True), set_graph, self.device)
        if failed:
            self._fallback(failed)
            return
        self.status["cuda_graph"] = "on"

    def _fallback(self, reason: str) -> None:
        warnings.warn(f"firm-bench: CUDA graph{self.what} disabled, training eagerly ({reason})", stacklevel=3)
        self.status["cuda_graph"] = f"fallback: {reason[:300]}"
        self._graph = None
        self.net.zero_grad(set_to_none=True)


class TrainEngine(GraphedSteps):
    """The training steps of one run: ``run_epoch(EpochData) -> per-step losses``.

    Owns no state of its own worth saving: the model, optimizer and scheduler
    it steps are the caller's (checkpointed by ``train``). The losses come
    back as a float32 device tensor (steps,), without a host read (the
    trainer checks them once per epoch). graph_mode: as :class:`GraphedSteps` (default from ``speed.cuda_graph``).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        loss_fn: Callable[[Tensor, Tensor, Tensor], Tensor],
        augment: DeviceAugment,
        opts: SpeedOptions,
        device: torch.device,
        batch: int,
        steps: int,
        graph_mode: GraphMode | None = None,
    ) -> None:
        self.model, self.optimizer, self.scheduler, self.loss_fn = model, optimizer, scheduler, loss_fn
        self.augment, self.opts, self.device, self.net = augment, opts, device, model
        self.batch, self.steps = int(batch), int(steps)
        self._plumb(graph_mode or ("capture" if opts.cuda_graph else "off"), opts.compile)
        # torch.compile (speed.compile): the model and the augmentation (hundreds of small
        # elementwise kernels fused into a few); each falls back to eager on its first failure
        self.fwd: Callable[[Tensor], Any] = model
        self._augment_eager = augment.both
        self.augment_fn: Callable[..., Any] = self._augment_eager
        if opts.compile:
            try:
                self.fwd = torch.compile(model, mode=opts.compile_mode)
                self.augment_fn = torch.compile(self._augment_eager, mode=opts.compile_mode)
            except Exception as exc:  # noqa: BLE001 - any failure means: run eagerly
                self._compile_failed(exc)
        self._static: dict[str, Any] = {}

    def _eager(self) -> None:
        self.fwd, self.augment_fn = self.model, self._augment_eager

    def loss(self, x_uint8: Tensor, labels: Tensor, draws: EpochDraws) -> Tensor:
        """The loss of one batch: two views (one batch, [view 1; view 2]), one forward pass of both, the configured loss."""
        x = self._compiled(self.augment_fn, self._augment_eager, x_uint8, draws)
        if self.opts.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_bf16(self.device, self.opts.bf16):
            z = self._compiled(self.fwd, self.model, x).z
        z1, z2 = z.float().chunk(2)
        return self.loss_fn(z1, z2, labels)

    # -------------------------------------------------------------- epochs

    def run_epoch(self, ed: EpochData) -> Tensor:
        """Train one epoch; returns the per-step losses (float32, device)."""
        # cuDNN autotuning for the training steps only (no process-wide flag left behind)
        with cudnn_benchmark(self.opts.cudnn_benchmark or torch.backends.cudnn.benchmark):
            if self._graphed():
                return self._graph_epoch(ed)
            return self._eager_epoch(ed)

    def _eager_epoch(self, ed: EpochData) -> Tensor:
        losses = torch.empty(self.steps, dtype=torch.float32, device=self.device)
        B = self.batch
        for step in range(self.steps):
            idx = ed.order[step * B : (step + 1) * B]
            loss = self.loss(ed.images[idx], ed.labels[idx], ed.draws.at(step))
            losses[step] = loss.detach()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
        return losses

    # -------------------------------------------------------------- the graphed step

    def _load_static(self, ed: EpochData, lrs: list[float], moms: list[float]) -> None:
        """Copy the epoch into the graph's fixed input buffers (allocated at the first epoch)."""
        st = self._static
        if not st:
            opt = self.optimizer
            group = opt.param_groups[0]
            if len(opt.param_groups) != 1 or group.get("nesterov") or group.get("dampening") or group.get("maximize"):
                raise ValueError("the graphed step implements plain SGD (one group, no nesterov/dampening/maximize)")
            params = [p for p in group["params"] if p.requires_grad]
            for p in params:
                state = opt.state[p]
                if state.get("momentum_buffer") is None:  # torch's first step: buf = grad = 0 * m + grad
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            st.update(
                params=params,
                bufs=[opt.state[p]["momentum_buffer"] for p in params],
                weight_decay=float(group["weight_decay"]),
                images=ed.images,
                labels=ed.labels,
                order=ed.order.clone(),
                draws=EpochDraws(*(t.clone() for t in ed.draws)),
                schedule=torch.empty((2, self.steps), dtype=torch.float32, device=self.device),  # lr, momentum
                stage=PinnedStage((2, self.steps), torch.float32, self.device),
                losses=torch.zeros(self.steps, dtype=torch.float32, device=self.device),
                step=torch.zeros(1, dtype=torch.int64, device=self.device),
            )
        else:
            for key in ("images", "labels"):
                if getattr(ed, key) is not st[key]:
                    if getattr(ed, key).shape != st[key].shape:
                        raise ValueError(f"the epoch's {key} changed shape {tuple(st[key].shape)} -> {tuple(getattr(ed, key).shape)}")
                    st[key].copy_(getattr(ed, key), non_blocking=True)
            st["order"].copy_(ed.order, non_blocking=True)
            for dst, src in zip(st["draws"], ed.draws):
                dst.copy_(src, non_blocking=True)
        # one copy from a reused pinned buffer: no pinned allocation, no host sync in a captured epoch
        st["stage"].copy_to(st["schedule"], torch.tensor([lrs, moms], dtype=torch.float32))
        st["lr"], st["momentum"] = st["schedule"][0], st["schedule"][1]

    def _body(self) -> None:
        """One training step reading only device buffers (the graph's content).

        Step index, batch indices, images, labels, augmentation parameters,
        learning rate and momentum all come from device tensors, so replays
        see each step's values. SGD as torch.optim.SGD (dampening 0, no
        nesterov): g = grad + wd p; buf = momentum buf + g; p = p - lr buf.
        """
        st, B = self._static, self.batch
        s = st["step"]
        idx = st["order"].view(self.steps, B).index_select(0, s)[0]
        loss = self.loss(st["images"].index_select(0, idx), st["labels"].index_select(0, idx), st["draws"].select(s))
        st["losses"].index_copy_(0, s, loss.detach().view(1))
        loss.backward()
        params, bufs = st["params"], st["bufs"]
        with torch.no_grad():
            grads = [p.grad for p in params]
            if st["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=st["weight_decay"])
            torch._foreach_mul_(bufs, st["momentum"].index_select(0, s)[0])
            torch._foreach_add_(bufs, grads)
            torch._foreach_add_(params, torch._foreach_mul(bufs, st["lr"].index_select(0, s)[0]), alpha=-1.0)

    def _begin_graph_epoch(self, ed: EpochData) -> bool:
        """Load the epoch into the graph's buffers (capturing at the first epoch); False: train it eagerly."""
        saved = self.scheduler.state_dict(), [dict(g) for g in self.optimizer.param_groups]
        lrs, moms = epoch_schedule(self.optimizer, self.scheduler, self.steps)
        try:
            self._load_static(ed, lrs, moms)
            if self.graph_mode == "capture" and self._graph is None:
                self._capture(self._static["losses"])
        except Exception as exc:  # noqa: BLE001 - any failure: eager steps
            self._fallback(f"{type(exc).__name__}: {exc}")
        if not self._graphed():  # the eager steps step the scheduler themselves
            self.scheduler.load_state_dict(saved[0])
            for group, before in zip(self.optimizer.param_groups, saved[1]):
                group.update({k: v for k, v in before.items() if k != "params"})
            return False
        return True

    def _graph_epoch(self, ed: EpochData) -> Tensor:
        if not self._begin_graph_epoch(ed):
            return self._eager_epoch(ed)
        for step in range(self.steps):
            self._run_body(step)
        return self._static["losses"].clone()

    @property
    def _step(self) -> Tensor:
        return self._static["step"]

    def _state(self) -> list[Tensor]:
        return [*self._static["params"], *self.model.buffers(), *self._static["bufs"]]

    def _params(self) -> list[Tensor]:
        return self._static["params"]


def capture_checked(state: Sequence[Tensor], params: Sequence[Tensor], losses: Tensor, body: Callable[[], None],
                    run_body: Callable[[int], None], zero_grad: Callable[[], None],
                    set_graph: Callable[[Any], None], device: torch.device) -> str | None:
    """Warm up on a side stream, capture ``body`` as a CUDA graph, check two replays against eager steps.

    The check runs steps 0 and 1 of the epoch eagerly through ``run_body``
    (the warm-up the capture needs anyway; their losses land in
    ``losses[:2]``), then replays them from the same state: the losses (their
    finite entries, and which are finite) and the parameter updates must agree
    up to non-deterministic kernels. ``state`` (parameters, buffers, optimiser
    state) is restored afterwards, whatever happens. Returns None when the
    graph is good (``set_graph`` has installed it), else why it is not. Shared
    by a run's ``TrainEngine`` and a pack's ``PackEngine``.
    """
    params = list(params)
    snapshot = [t.detach().clone() for t in state]

    def restore() -> None:
        with torch.no_grad():
            for t, saved in zip(state, snapshot):
                t.copy_(saved)

    def update_norms(reference: list[Tensor]) -> tuple[float, float]:
        start = snapshot[: len(params)]
        diff = sum(float(((p - r) ** 2).sum()) for p, r in zip(params, reference))
        ref = sum(float(((r - p0) ** 2).sum()) for r, p0 in zip(reference, start))
        return math.sqrt(diff), math.sqrt(ref)

    try:
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for step in (0, 1):  # warm-up = the eager reference of the check
                run_body(step)
            ref_losses = losses[:2].clone()
            ref_params = [p.detach().clone() for p in params]
            restore()
        torch.cuda.current_stream(device).wait_stream(side)
        zero_grad()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            body()
        set_graph(graph)
        for step in (0, 1):
            run_body(step)
        got_losses = losses[:2].clone()
        diff, ref = update_norms(ref_params)
    finally:
        restore()
    finite = torch.isfinite(ref_losses)
    if not torch.equal(finite, torch.isfinite(got_losses)) or not torch.allclose(
            got_losses[finite], ref_losses[finite], rtol=1e-3, atol=1e-4) or not diff <= 1e-2 * ref:
        set_graph(None)
        return (f"graph check failed: losses {got_losses.tolist()} vs eager {ref_losses.tolist()}, "
                f"update difference {diff:.3e} vs update {ref:.3e}")
    return None
