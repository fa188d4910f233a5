"""The training loop's fast path (issue 6): the paper's recipe at GPU speed.

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
  device with no host input (:class:`DeviceAugment`). Same numbers as off.
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
  device and searches there; only the similarities come back.
- ``bf16``: bfloat16 autocast of the model's forward and backward; the loss
  is computed in float32 from the projections. Not exact (activations keep 8
  mantissa bits); tests bound the loss difference.
- ``channels_last``: NHWC memory format for the model and its inputs
  (tensor-core convolutions). Same arithmetic, other kernels.
- ``cudnn_benchmark``: cuDNN picks the fastest convolution algorithm for the
  fixed shapes (a process-wide flag; other kernels, same arithmetic).
- ``cuda_graph``: the whole step (batch gather, augmentation, forward, loss,
  backward, SGD update) is captured once as a CUDA graph and replayed; the
  learning rate and momentum of each step are device tensors filled per epoch
  from the scheduler. Before use, two replayed steps are compared with the
  same two steps run eagerly from the same state; a failure or mismatch falls
  back to eager steps with a warning (recorded). Needs ``predraw`` and
  ``fast_loss``.
- ``compile``: ``torch.compile`` of the model (``compile_mode``); falls back
  to eager, with a warning, where compilation fails.

Exactness on the CPU: ``resident_data``, ``predraw``, ``fast_loss``,
``check_loss_every`` and ``fast_eval`` change no number; a run with them on
equals a run with them off bit for bit (tests/test_speed.py).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Literal, Mapping, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from firm_bench.augment import (
    AugmentConfig,
    CropParams,
    TwoViewAugment,
    _blur,
    _grayscale,
    _resize_center_crop,
    _rgb_to_hsv,
    resized_crop,
    to_float,
)

__all__ = [
    "COMPILE_MODES",
    "DeviceAugment",
    "EpochData",
    "EpochDraws",
    "NonFiniteLoss",
    "SpeedOptions",
    "TrainEngine",
    "draw_epoch",
    "evaluate_knn_on_device",
    "first_non_finite",
    "resolve_speed",
]

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# torch.compile modes that capture CUDA graphs themselves (exclusive with speed.cuda_graph)
_COMPILE_GRAPH_MODES = ("reduce-overhead", "max-autotune")
N_TRIES = 10  # RandomResizedCrop tries per sample, as augment.sample_crop_params


class NonFiniteLoss(RuntimeError):
    """A training step produced a non-finite loss (step is 1-based within the epoch)."""

    def __init__(self, step: int, value: float) -> None:
        super().__init__(f"non-finite loss ({value}) at step {step}")
        self.step, self.value = step, value


# ---------------------------------------------------------------- options


@dataclass(frozen=True)
class SpeedOptions:
    """The resolved ``speed`` section (every ``auto`` made concrete for one device)."""

    resident_data: bool = False
    predraw: bool = False
    fast_loss: bool = False
    check_loss_every: int = 1
    fast_eval: bool = False
    eval_bf16: bool = False
    bf16: bool = False
    channels_last: bool = False
    cudnn_benchmark: bool = False
    cuda_graph: bool = False
    compile: bool = False
    compile_mode: str = "default"

    @classmethod
    def off(cls) -> "SpeedOptions":
        """Every speed-up off: the loop as it was before the fast path."""
        return cls()

    def record(self) -> dict:
        return asdict(self)


def _auto(value: Any, key: str, when: bool) -> bool:
    if value == "auto":
        return when
    if isinstance(value, bool):
        return value
    raise ValueError(f"speed.{key}={value!r}: expected auto, true or false")


def resolve_speed(speed: Mapping[str, Any], device: torch.device) -> SpeedOptions:
    """The options for ``device`` from the config's ``speed`` section.

    ``auto`` means on for CUDA devices (bf16: CUDA devices with bf16 support)
    and off elsewhere. Impossible explicit combinations raise ValueError
    naming the key.
    """
    cuda = device.type == "cuda"
    bf16_ok = cuda and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    opts = SpeedOptions(
        resident_data=bool(speed["resident_data"]),
        predraw=bool(speed["predraw"]),
        fast_loss=bool(speed["fast_loss"]),
        check_loss_every=int(speed["check_loss_every"]),
        fast_eval=bool(speed["fast_eval"]),
        eval_bf16=bool(speed["eval_bf16"]),
        bf16=_auto(speed["bf16"], "bf16", bf16_ok),
        channels_last=_auto(speed["channels_last"], "channels_last", cuda),
        cudnn_benchmark=_auto(speed["cudnn_benchmark"], "cudnn_benchmark", cuda),
        cuda_graph=False,
        compile=bool(speed["compile"]),
        compile_mode=str(speed["compile_mode"]),
    )
    if opts.compile_mode not in COMPILE_MODES:
        raise ValueError(f"speed.compile_mode={opts.compile_mode!r}; valid: {', '.join(COMPILE_MODES)}")
    graph = speed["cuda_graph"]
    blockers = [
        why
        for why, bad in (
            ("a CUDA device", not cuda),
            ("speed.predraw: true", not opts.predraw),
            ("speed.fast_loss: true", not opts.fast_loss),
            ("no speed.compile with a CUDA-graph compile_mode", opts.compile and opts.compile_mode in _COMPILE_GRAPH_MODES),
        )
        if bad
    ]
    if graph is True and blockers:
        raise ValueError(f"speed.cuda_graph: true needs {', '.join(blockers)}; use auto or false")
    return replace(opts, cuda_graph=_auto(graph, "cuda_graph", not blockers))


# ---------------------------------------------------------------- random draws of an epoch


class EpochDraws(NamedTuple):
    """Every random parameter of the two views of every step of one epoch.

    S steps, B samples, view v in {0, 1}:
    crop: int64 (S, 2, 4, B) top, left, height, width of the crop box;
    factors: float32 (S, 2, B, 4) brightness, contrast, saturation factors, hue shift;
    order: int64 (S, 2, B, 4) the jitter ops' order per sample (a permutation of 0..3);
    sigma: float32 (S, 2, B) blur sigma;
    apply: bool (S, 2, 2, B) [jitter applied, blur applied].
    A step's slice (``at``) has the same fields without the leading S.
    """

    crop: Tensor
    factors: Tensor
    order: Tensor
    sigma: Tensor
    apply: Tensor

    def at(self, step: int) -> "EpochDraws":
        return EpochDraws(*(t[step] for t in self))

    def select(self, step: Tensor) -> "EpochDraws":
        """The slice of a step given as a device tensor of shape (1,) (no host read)."""
        return EpochDraws(*(t.index_select(0, step)[0] for t in self))

    def to(self, device: torch.device, non_blocking: bool = False) -> "EpochDraws":
        return EpochDraws(*(_to_device(t, device, non_blocking) for t in self))


def _autocast(device: torch.device, bf16: bool) -> Any:
    """bf16 autocast on ``device`` when asked (no weight cache: CUDA graphs need none), else nothing."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)


def _to_device(t: Tensor, device: torch.device, non_blocking: bool = False) -> Tensor:
    """``t`` on ``device``; from pinned memory without waiting for the device when asked."""
    if t.device == device:
        return t
    if non_blocking and device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _crop_boxes(u: Tensor, loc: Tensor, height: int, width: int, scale: Sequence[float], ratio: Sequence[float]) -> Tensor:
    """``augment.sample_crop_params``'s arithmetic on given uniforms, for many batches at once.

    u: float64 (..., N_TRIES, B, 2), loc: float64 (..., B, 2), drawn as
    sample_crop_params draws them. Returns int64 (..., 4, B): top, left,
    height, width, equal to sample_crop_params's (tests check it bit for bit).
    """
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    area = height * width * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    aspect = torch.exp(log_r[0] + (log_r[1] - log_r[0]) * u[..., 1])
    w = torch.round(torch.sqrt(area * aspect)).long()
    h = torch.round(torch.sqrt(area / aspect)).long()
    valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = valid.to(torch.int8).argmax(dim=-2, keepdim=True)  # first valid try (0 when none); tries: dim -2
    w = w.gather(-2, first).squeeze(-2)
    h = h.gather(-2, first).squeeze(-2)
    ok = valid.any(dim=-2)
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(height * max(ratio))), height
    else:
        fw, fh = width, height
    w = torch.where(ok, w, torch.full_like(w, fw))
    h = torch.where(ok, h, torch.full_like(h, fh))
    top = torch.floor(loc[..., 0] * (height - h + 1)).long().clamp_max_(height - h)
    left = torch.floor(loc[..., 1] * (width - w + 1)).long().clamp_max_(width - w)
    top = torch.where(ok, top, (height - h) // 2)
    left = torch.where(ok, left, (width - w) // 2)
    return torch.stack((top, left, h, w), dim=-2)


def draw_epoch(
    generator: torch.Generator, steps: int, batch: int, cfg: AugmentConfig, height: int, width: int
) -> EpochDraws:
    """All augmentation parameters of an epoch, drawn on the CPU from ``generator``.

    The uniforms are drawn step by step and view by view in the order and
    dtypes of ``TwoViewAugment`` (crop: tries then location, float64; jitter:
    factors, order keys, coin, float32; blur: sigma, coin), so the parameters
    equal those of the per-step augmentation driven by the same generator.
    The arithmetic is then done once for the whole epoch.
    """
    if generator.device.type != "cpu":
        raise ValueError("draw_epoch needs a CPU generator (its draws must not depend on the device)")
    f64 = torch.float64
    u_crop = torch.empty((steps, 2, N_TRIES, batch, 2), dtype=f64)
    u_loc = torch.empty((steps, 2, batch, 2), dtype=f64)
    u_jit = torch.empty((steps, 2, batch, 4))
    u_ord = torch.empty((steps, 2, batch, 4))
    u_coin = torch.empty((steps, 2, 3, batch))  # jitter coin, blur sigma, blur coin
    for s in range(steps):
        for v in range(2):
            u_crop[s, v].uniform_(generator=generator)
            u_loc[s, v].uniform_(generator=generator)
            u_jit[s, v].uniform_(generator=generator)
            u_ord[s, v].uniform_(generator=generator)
            for j in range(3):
                u_coin[s, v, j].uniform_(generator=generator)
    b, c, sat, hue = cfg.jitter
    lo = torch.tensor([max(0.0, 1 - b), max(0.0, 1 - c), max(0.0, 1 - sat), -hue])
    hi = torch.tensor([1 + b, 1 + c, 1 + sat, hue])
    s_lo, s_hi = cfg.blur_sigma
    return EpochDraws(
        crop=_crop_boxes(u_crop, u_loc, height, width, cfg.crop_scale, cfg.crop_ratio),
        factors=lo + (hi - lo) * u_jit,
        order=torch.argsort(u_ord, dim=-1),
        sigma=s_lo + (s_hi - s_lo) * u_coin[:, :, 1],
        apply=torch.stack((u_coin[:, :, 0] < cfg.jitter_p, u_coin[:, :, 2] < cfg.blur_p), dim=2),
    )


# ---------------------------------------------------------------- augmentation on the device


def _hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """HSV (each (B, H, W) in [0, 1]) -> RGB (B, 3, H, W), torchvision's sextant formulas.

    The same values as ``augment._hsv_to_rgb`` (which gathers from a table it
    builds with ``torch.tensor(..., device)``: a host-to-device copy each call);
    here the sextant picks v, p, q or t by ``torch.where``.
    """
    h6 = h * 6
    i = torch.floor(h6)
    f = h6 - i
    i = i - 6 * torch.floor(i / 6)  # sextant 0..5 (h = 1 wraps to 0)
    p = (v * (1 - s)).clamp_(0, 1)
    q = (v * (1 - s * f)).clamp_(0, 1)
    t = (v * (1 - s * (1 - f))).clamp_(0, 1)
    i0, i1, i2, i3, i4, i5 = (i == k for k in range(6))
    r = torch.where(i0 | i5, v, torch.where(i1, q, torch.where(i4, t, p)))  # v q p p t v
    g = torch.where(i1 | i2, v, torch.where(i0, t, torch.where(i3, q, p)))  # t v v q p p
    b = torch.where(i3 | i4, v, torch.where(i2, t, torch.where(i5, q, p)))  # p p t v v q
    return torch.stack((r, g, b), dim=1)


def _hue(x: Tensor, shift: Tensor) -> Tensor:
    """Hue rotation by ``shift`` (B,) turns: RGB -> HSV, h <- (h + shift) mod 1, -> RGB."""
    hsv = _rgb_to_hsv(x)
    h = torch.remainder(hsv[:, 0] + shift.view(-1, 1, 1), 1.0)
    return _hsv_to_rgb(h, hsv[:, 1], hsv[:, 2])


class DeviceAugment:
    """``TwoViewAugment`` with its random parameters given (:class:`EpochDraws`).

    Every op runs on the images' device with no host input, so a step can be
    captured in a CUDA graph. The result equals ``TwoViewAugment`` driven by
    the generator the draws came from. The colour jitter applies, at each of
    its four positions, one blend f x + (1 - f) b (b = 0, mean gray or gray:
    brightness, contrast, saturation) and the hue rotation only where the
    sample's order puts it; on the CPU the hue is computed on those samples
    only (exact, elementwise), on a GPU on all of them (no host read of the
    selection).
    """

    def __init__(
        self, cfg: AugmentConfig, size: int, mean: Sequence[float], std: Sequence[float], device: torch.device
    ) -> None:
        self.cfg, self.size = cfg, int(size)
        self.mean = torch.tensor(tuple(mean), dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(tuple(std), dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.active = tuple(bool(s > 0) for s in cfg.jitter)
        self.hue_on_subset = torch.device(device).type == "cpu"

    def __call__(self, x_uint8: Tensor, draws: EpochDraws) -> tuple[Tensor, Tensor]:
        """Two normalised float32 views (B, 3, size, size) of uint8 images with one step's draws."""
        x = to_float(x_uint8)
        return self.view(x, draws, 0), self.view(x, draws, 1)

    def view(self, x: Tensor, d: EpochDraws, v: int) -> Tensor:
        x = resized_crop(x, CropParams(*d.crop[v]), self.size)
        if any(self.active):
            x = torch.where(d.apply[v, 0].view(-1, 1, 1, 1), self._jitter(x, d.factors[v], d.order[v]), x)
        x = torch.where(d.apply[v, 1].view(-1, 1, 1, 1), _blur(x, self.cfg.blur_kernel, d.sigma[v]), x)
        return (x - self.mean) / self.std

    def _jitter(self, x: Tensor, factors: Tensor, order: Tensor) -> Tensor:
        """ColorJitter with per-sample factors (B, 4) and op order (B, 4), as augment._apply_jitter."""
        on_b, on_c, on_s, on_h = self.active
        zero = x.new_zeros(())
        for pos in range(4):
            o = order[:, pos]
            sel = [(o == k) & on for k, on in enumerate(self.active)]
            out = x
            if on_b or on_c or on_s:
                gray = _grayscale(x)
                base = torch.where(
                    sel[1].view(-1, 1, 1, 1),
                    gray.mean(dim=(1, 2, 3), keepdim=True),
                    torch.where(sel[2].view(-1, 1, 1, 1), gray, zero),
                )
                f = factors.gather(1, o[:, None]).view(-1, 1, 1, 1)
                blended = (f * x + (1 - f) * base).clamp_(0.0, 1.0)
                out = torch.where((sel[0] | sel[1] | sel[2]).view(-1, 1, 1, 1), blended, x)
            if on_h:
                if self.hue_on_subset:
                    idx = sel[3].nonzero().squeeze(1)
                    if idx.numel():
                        out = out.index_copy(0, idx, _hue(x.index_select(0, idx), factors[idx, 3]))
                else:
                    out = torch.where(sel[3].view(-1, 1, 1, 1), _hue(x, factors[:, 3]), out)
            x = out
        return x


# ---------------------------------------------------------------- the training steps of an epoch


class EpochData(NamedTuple):
    """What one epoch trains on, on the training device.

    images: uint8 (M, 3, S, S); labels: int64 (M,); order: int64 (steps * B,)
    the shuffled indices; draws: the epoch's augmentation parameters
    (``predraw``) or None, and then ``generator`` is drawn from step by step.
    """

    images: Tensor
    labels: Tensor
    order: Tensor
    draws: EpochDraws | None
    generator: torch.Generator


def first_non_finite(losses: Tensor) -> tuple[int, float] | None:
    """(0-based index, value) of the first non-finite entry of a host tensor, or None."""
    bad = (~torch.isfinite(losses)).nonzero()
    if bad.numel() == 0:
        return None
    i = int(bad[0, 0])
    return i, float(losses[i])


GraphMode = Literal["off", "capture", "body"]


class TrainEngine:
    """The training steps of one run: ``run_epoch(EpochData) -> per-step losses``.

    Owns no state of its own worth saving: the model, optimizer and scheduler
    it steps are the caller's (checkpointed by ``train``). The losses come
    back as a float32 device tensor (steps,), without a host read unless
    ``check_loss_every`` asks for one; a check that finds a non-finite loss
    raises :class:`NonFiniteLoss` before that step's update.

    graph_mode (from ``speed.cuda_graph``): "capture" records the step as a
    CUDA graph at the first epoch; "body" runs the very same graph body
    eagerly (tests: the graph's arithmetic, on the CPU); "off" the plain step.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        loss_fn: Callable[[Tensor, Tensor, Tensor], Tensor],
        augment: TwoViewAugment,
        opts: SpeedOptions,
        device: torch.device,
        batch: int,
        steps: int,
        graph_mode: GraphMode | None = None,
    ) -> None:
        self.model, self.optimizer, self.scheduler, self.loss_fn = model, optimizer, scheduler, loss_fn
        self.augment, self.opts, self.device = augment, opts, device
        self.batch, self.steps = int(batch), int(steps)
        self.device_augment = DeviceAugment(augment.cfg, augment.size, augment.mean, augment.std, device) if opts.predraw else None
        self.graph_mode: GraphMode = graph_mode or ("capture" if opts.cuda_graph else "off")
        if self.graph_mode != "off" and not (opts.predraw and opts.fast_loss):
            raise ValueError("a graphed step needs speed.predraw and speed.fast_loss")
        self.status: dict[str, str] = {
            "cuda_graph": "pending" if self.graph_mode == "capture" else self.graph_mode,
            "compile": "pending" if opts.compile else "off",
        }
        self.fwd: Callable[[Tensor], Any] = model
        if opts.compile:
            try:
                self.fwd = torch.compile(model, mode=opts.compile_mode)
            except Exception as exc:  # noqa: BLE001 - any failure means: run eagerly
                self._compile_failed(exc)
        self._graph: Any = None
        self._static: dict[str, Any] = {}

    # -------------------------------------------------------------- one step

    def _compile_failed(self, exc: BaseException) -> None:
        warnings.warn(f"firm-bench: torch.compile failed ({type(exc).__name__}: {exc}); training eagerly", stacklevel=2)
        self.fwd = self.model
        self.status["compile"] = f"failed, eager: {type(exc).__name__}: {str(exc)[:200]}"

    def _model(self, x: Tensor) -> Any:
        if self.fwd is self.model:
            return self.model(x)
        try:
            out = self.fwd(x)
            self.status["compile"] = "on"
            return out
        except Exception as exc:  # noqa: BLE001
            self._compile_failed(exc)
            return self.model(x)

    def loss(self, x_uint8: Tensor, labels: Tensor, draws: EpochDraws | None, generator: torch.Generator | None) -> Tensor:
        """The loss of one batch: two views, one forward pass of both, the configured loss."""
        if draws is not None:
            v1, v2 = self.device_augment(x_uint8, draws)
        else:
            v1, v2 = self.augment(x_uint8, generator)
        x = torch.cat([v1, v2])
        if self.opts.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(self.device, self.opts.bf16):
            z = self._model(x).z
        z1, z2 = z.float().chunk(2)
        return self.loss_fn(z1, z2, labels)

    def _check(self, losses: Tensor, step: int, since: int) -> None:
        found = first_non_finite(losses[since : step + 1].cpu())
        if found is not None:
            raise NonFiniteLoss(since + found[0] + 1, found[1])

    def _due(self, step: int) -> bool:
        every = self.opts.check_loss_every
        return every > 0 and (step + 1) % every == 0

    # -------------------------------------------------------------- epochs

    def run_epoch(self, ed: EpochData) -> Tensor:
        """Train one epoch; returns the per-step losses (float32, device)."""
        if self.graph_mode != "off" and not self.status["cuda_graph"].startswith("fallback"):
            return self._graph_epoch(ed)
        return self._eager_epoch(ed)

    def _eager_epoch(self, ed: EpochData) -> Tensor:
        losses = torch.empty(self.steps, dtype=torch.float32, device=self.device)
        B, checked = self.batch, 0
        for step in range(self.steps):
            idx = ed.order[step * B : (step + 1) * B]
            draws = ed.draws.at(step) if ed.draws is not None else None
            loss = self.loss(ed.images[idx], ed.labels[idx], draws, ed.generator)
            losses[step] = loss.detach()
            if self._due(step):
                self._check(losses, step, checked)
                checked = step + 1
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
        return losses

    # -------------------------------------------------------------- the graphed step

    def _schedule(self) -> tuple[list[float], list[float], dict]:
        """This epoch's per-step lr and momentum: the scheduler stepped through the epoch.

        Leaves scheduler and optimizer as the eager loop would at the epoch's
        end; returns the values and what is needed to undo it (fallback).
        """
        group = self.optimizer.param_groups[0]
        undo = {"scheduler": self.scheduler.state_dict(), "groups": [dict(g) for g in self.optimizer.param_groups]}
        lrs, moms = [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "scheduler.step() before optimizer.step()"
            for _ in range(self.steps):
                lrs.append(float(group["lr"]))
                moms.append(float(group.get("momentum", 0.0)))
                self.scheduler.step()
        return lrs, moms, undo

    def _undo_schedule(self, undo: dict) -> None:
        self.scheduler.load_state_dict(undo["scheduler"])
        for group, saved in zip(self.optimizer.param_groups, undo["groups"]):
            group.update({k: v for k, v in saved.items() if k != "params"})

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
                lr=torch.empty(self.steps, dtype=torch.float32, device=self.device),
                momentum=torch.empty(self.steps, dtype=torch.float32, device=self.device),
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
        st["lr"].copy_(_to_device(torch.tensor(lrs, dtype=torch.float32), self.device, True), non_blocking=True)
        st["momentum"].copy_(_to_device(torch.tensor(moms, dtype=torch.float32), self.device, True), non_blocking=True)

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
        loss = self.loss(st["images"].index_select(0, idx), st["labels"].index_select(0, idx), st["draws"].select(s), None)
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

    def _run_body(self, step: int) -> None:
        self._static["step"].fill_(step)
        if self._graph is not None:
            self._graph.replay()
        else:
            self.model.zero_grad(set_to_none=True)
            self._body()

    def _graph_epoch(self, ed: EpochData) -> Tensor:
        if ed.draws is None:
            raise ValueError("a graphed step needs predrawn augmentation parameters (speed.predraw)")
        lrs, moms, undo = self._schedule()
        try:
            self._load_static(ed, lrs, moms)
            if self.graph_mode == "capture" and self._graph is None:
                self._capture()
        except Exception as exc:  # noqa: BLE001 - any failure: eager steps
            self._undo_schedule(undo)
            self._fallback(f"{type(exc).__name__}: {exc}")
            return self._eager_epoch(ed)
        if self.status["cuda_graph"].startswith("fallback"):
            self._undo_schedule(undo)
            return self._eager_epoch(ed)
        # A graphed step cannot stop before its update, so a check finds a
        # non-finite loss after it (the run fails either way, without a checkpoint).
        losses, checked = self._static["losses"], 0
        for step in range(self.steps):
            self._run_body(step)
            if self._due(step):
                self._check(losses, step, checked)
                checked = step + 1
        return losses.clone()

    def _fallback(self, reason: str) -> None:
        warnings.warn(f"firm-bench: CUDA graph disabled, training eagerly ({reason})", stacklevel=3)
        self.status["cuda_graph"] = f"fallback: {reason[:300]}"
        self._graph = None
        self.model.zero_grad(set_to_none=True)

    def _state(self) -> list[Tensor]:
        return [*self._static["params"], *self.model.buffers(), *self._static["bufs"]]

    def _capture(self) -> None:
        """Warm up on a side stream, capture the body, check two replays against eager steps.

        The check runs steps 0 and 1 of the epoch eagerly (the warm-up the
        capture needs anyway), then replays them from the same state; the
        losses and the parameter updates must agree (up to non-deterministic
        kernels). The state is restored afterwards, whatever happens.
        """
        state = self._state()
        params = self._static["params"]
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
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for step in (0, 1):  # warm-up = the eager reference of the check
                    self._run_body(step)
                ref_losses = self._static["losses"][:2].clone()
                ref_params = [p.detach().clone() for p in params]
                restore()
            torch.cuda.current_stream(self.device).wait_stream(side)
            self.model.zero_grad(set_to_none=True)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._body()
            self._graph = graph
            for step in (0, 1):
                self._run_body(step)
            got_losses = self._static["losses"][:2].clone()
            diff, ref = update_norms(ref_params)
        finally:
            restore()
        if not torch.allclose(got_losses, ref_losses, rtol=1e-3, atol=1e-4) or not diff <= 1e-2 * ref:
            self._fallback(
                f"graph check failed: losses {got_losses.tolist()} vs eager {ref_losses.tolist()}, "
                f"update difference {diff:.3e} vs update {ref:.3e}"
            )
            return
        self.status["cuda_graph"] = "on"


# ---------------------------------------------------------------- evaluation on the device


@torch.no_grad()
def encode_on_device(
    model: torch.nn.Module,
    images: Tensor,
    size: int,
    mean: Tensor,
    std: Tensor,
    batch_size: int,
    channels_last: bool = False,
    bf16: bool = False,
) -> Tensor:
    """Encoder features (N, D) float32 on the model's device, test transform, eval mode.

    The test transform of ``augment.test_transform`` (Resize(1.125 size) ->
    CenterCrop -> normalise) with mean/std (1, 3, 1, 1) already on the device.
    """
    device = mean.device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = (_resize_center_crop(to_float(images[i : i + batch_size].to(device)), size) - mean) / std
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, bf16):
            out.append(model.features(x).float())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, model.feature_dim, device=device)


@torch.no_grad()
def evaluate_knn_on_device(
    model: torch.nn.Module,
    bank_images: Tensor,
    test_images: Tensor,
    targets: Tensor,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    k: int,
    batch_size: int,
    device: torch.device,
    channels_last: bool = False,
    bf16: bool = False,
) -> float:
    """Learning-curve AUROC (k-NN mean cosine similarity), features and search on ``device``.

    The same number as ``train.evaluate_knn`` (which gathers features on the
    CPU and searches there) on the CPU; one host read at the end.
    """
    from firm_bench.metrics import auroc
    from firm_bench.scores import knn_mean_similarity

    m = torch.tensor(tuple(mean), dtype=torch.float32, device=device).view(1, -1, 1, 1)
    s = torch.tensor(tuple(std), dtype=torch.float32, device=device).view(1, -1, 1, 1)
    bank = encode_on_device(model, bank_images, size, m, s, batch_size, channels_last, bf16)
    test = encode_on_device(model, test_images, size, m, s, batch_size, channels_last, bf16)
    sims = knn_mean_similarity(F.normalize(test, dim=1), F.normalize(bank, dim=1), k=k)
    return auroc(sims.cpu().numpy(), targets.cpu().numpy())
