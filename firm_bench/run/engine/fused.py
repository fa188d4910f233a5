"""Horizontal fusion: K runs of the same model shape trained as one fused model.

HFTA (Wang et al., "Horizontally Fused Training Array", MLSys 2021,
arXiv 2102.02344): K runs whose tensors have the same shapes (same model
section, image size, batch size; they may differ in seed, class, loss,
temperature, outlier source, learning rate) are trained as ONE model whose
operators each hold the K runs side by side, so a step launches one kernel
per operator instead of K and a GPU that one small run leaves idle fills up.

Every operator of the FIRM model (``models.FirmModel``) fuses without mixing
runs:

- ``Conv2d(c_in, c_out)`` -> ``Conv2d(K c_in, K c_out, groups=K)``: group k
  reads input channels [k c_in, (k+1) c_in) and writes output channels
  [k c_out, (k+1) c_out) with run k's weight; the fused weight is the K
  weights concatenated along the output channels, (K c_out, c_in, kh, kw).
  The input of the stem is the K batches stacked along the channels:
  x (K, B, 3, H, W) -> (B, 3K, H, W) (:func:`pack`).
- ``BatchNorm2d(C)`` -> :class:`FusedBatchNorm` over K C channels: batch
  statistics are per channel, so channel block k is run k's BatchNorm
  (same mean, biased variance for the output, unbiased for running_var).
- ReLU, the residual sums, pooling: elementwise or per channel.
- global average pool -> (B, K D) -> h (K, B, D).
- head ``Linear(in, out, bias=False)`` -> :class:`FusedLinear`, a batched
  matrix product with weight (K, out, in) on activations kept as columns
  (K, in, B): y_k = W_k x_k (``torch.bmm``).
- head ``BatchNorm1d(C)`` -> :class:`FusedBatchNorm` on the columns viewed as
  (1, K C, B): statistics over the B samples of each channel, as
  BatchNorm1d over (B, C) computes them.
- L2 normalisation per run and sample: z (K, B, P).

Every fused tensor T (parameter or buffer) is the K runs' tensors stacked on
a leading run axis and merged with their first dimension:
``T.unflatten(0, (K, -1))[k]`` is run k's tensor (conv weight (K c_out, ...),
BN vectors (K C), head weights (K, out, in), ``num_batches_tracked`` (K,)).
So :func:`fuse` and ``FusedFirmModel.state_dict_of`` / ``load_run_state``
convert exactly (bit for bit) between K ``FirmModel`` state dicts and the
fused one, and the fused state dict's names are ``FirmModel``'s (plus ``live``).

Training. The K losses are computed per run (each run's own loss, tau, form
and labels, :class:`FusedLoss`) and summed; the gradient of a sum is each
run's own gradient in its own slice. SGD with momentum and weight decay is
elementwise, so :class:`FusedSGD` applies torch.optim.SGD's update
(dampening 0, no nesterov) per run slice with per-run lr, momentum and
weight decay given as device tensors (no host read: it can run inside a
CUDA graph)::

    g = grad + wd_k p;   buf = m_k buf + g   (first step: buf = g);   p = p - lr_k buf

Faults stay local: ``FusedFirmModel.live`` (K,) bool marks the runs that
still train. A run that is not live keeps its parameters, momentum buffers
and BatchNorm running statistics unchanged while the others train
(:func:`masked_total` zeroes its loss's gradient with ``torch.where``, so a
NaN of that run does not reach the others; the SGD step and the BatchNorms
skip its slices). ``masked_total(..., freeze_non_finite=True)`` clears a
run's ``live`` flag on the device at the first non-finite loss, before that
step's update (its BN running statistics of that forward pass have already
moved: the run has failed anyway).

Exactness (tests/run/test_fused.py, CPU float32): forward and training steps
equal K separate models trained with torch.optim.SGD up to float rounding:
grouped convolutions and batched matrix products sum the same products in
another order (about 1e-6 relative per op), so values agree to ~1e-5, not
bit for bit. The SGD update itself is torch's bit for bit (``addcmul``
rounds as ``add(alpha=)``), the conversions are exact.

Shapes: K runs, B samples per run (2B rows with both views), D = encoder
feature dimension, P = ``model.proj_dim``.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from firm_bench.method.models import BasicBlock, CifarResNet, FirmModel, _TorchvisionEncoder

__all__ = [
    "FusedBatchNorm",
    "FusedFirmModel",
    "FusedLinear",
    "FusedLoss",
    "FusedOutput",
    "FusedSGD",
    "fuse",
    "masked_total",
    "pack",
]


# --------------------------------------------------------------------------- #
# fused operators
# --------------------------------------------------------------------------- #
class FusedBatchNorm(nn.Module):
    """K BatchNorms of C channels as one BatchNorm over K C channels.

    Parameters and buffers: weight, bias (K C) (``affine``), running_mean,
    running_var (K C), num_batches_tracked (K,) int64 (one count per run).
    ``layout``: "channels" takes (N, K C, *) (the encoder's BatchNorm2d);
    "runs" takes the head's columns (K, C, N), viewed as (1, K C, N) so the
    statistics of a channel run over its N samples as BatchNorm1d's do.

    Training: y = (x - mean_c) / sqrt(var_c + eps) * w_c + b_c with the
    batch's per-channel mean and biased variance;
    running = (1 - momentum) running + momentum batch_stat (unbiased
    variance), as ``nn.BatchNorm`` with a float momentum. With ``live``
    (K,) bool given (``FusedFirmModel`` sets it each forward pass), the
    running statistics and the count of runs that are not live are left as
    they were.
    """

    def __init__(self, runs: int, num_features: int, eps: float, momentum: float, affine: bool,
                 layout: str = "channels", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if layout not in ("channels", "runs"):
            raise ValueError(f"FusedBatchNorm layout must be 'channels' or 'runs', got {layout!r}")
        self.runs, self.num_features = int(runs), int(num_features)
        self.eps, self.momentum, self.affine, self.layout = float(eps), float(momentum), bool(affine), layout
        n = self.runs * self.num_features
        kw = {"device": device, "dtype": dtype}
        if affine:
            self.weight = nn.Parameter(torch.ones(n, **kw))
            self.bias = nn.Parameter(torch.zeros(n, **kw))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.register_buffer("running_mean", torch.zeros(n, **kw))
        self.register_buffer("running_var", torch.ones(n, **kw))
        self.register_buffer("num_batches_tracked", torch.zeros(self.runs, dtype=torch.long, device=device))
        self.live: Tensor | None = None  # (K,) bool, set by FusedFirmModel.forward; None = every run live

    def extra_repr(self) -> str:
        return (f"runs={self.runs}, num_features={self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, layout={self.layout!r}")

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        if self.layout == "runs":
            x = x.reshape(1, self.runs * self.num_features, shape[-1])
        if not self.training:
            y = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
            return y.view(shape)
        live = self.live
        if live is None:
            y = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True,
                             self.momentum, self.eps)
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
            return y.view(shape)
        # the update goes to copies (autograd keeps them; the buffers may change after the op), then to the live runs
        new_mean, new_var = self.running_mean.clone(), self.running_var.clone()
        y = F.batch_norm(x, new_mean, new_var, self.weight, self.bias, True, self.momentum, self.eps)
        with torch.no_grad():
            keep = live.view(self.runs, 1)
            for buf, new in ((self.running_mean, new_mean), (self.running_var, new_var)):
                view = buf.view(self.runs, self.num_features)
                view.copy_(torch.where(keep, new.view(self.runs, self.num_features), view))
            self.num_batches_tracked.add_(live.to(torch.long))
        return y.view(shape)


class FusedLinear(nn.Module):
    """K Linear layers as one batched matrix product on columns.

    weight (K, out, in), bias (K, out) or None. forward: x (K, in, N) ->
    y (K, out, N), y_k = W_k x_k (+ b_k), i.e. Linear's x W^T + b transposed.
    """

    def __init__(self, runs: int, in_features: int, out_features: int, bias: bool,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.runs, self.in_features, self.out_features = int(runs), int(in_features), int(out_features)
        kw = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(self.runs, self.out_features, self.in_features, **kw))
        self.bias = nn.Parameter(torch.empty(self.runs, self.out_features, **kw)) if bias else None

    def extra_repr(self) -> str:
        return f"runs={self.runs}, in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    def forward(self, x: Tensor) -> Tensor:
        if self.bias is None:
            return torch.bmm(self.weight, x)
        return torch.baddbmm(self.bias.unsqueeze(-1), self.weight, x)


def _fused_conv(conv: nn.Conv2d, runs: int) -> nn.Conv2d:
    if conv.padding_mode != "zeros":
        raise ValueError(f"fuse: Conv2d padding_mode={conv.padding_mode!r} is not supported (zeros only)")
    return nn.Conv2d(runs * conv.in_channels, runs * conv.out_channels, conv.kernel_size, conv.stride,
                     conv.padding, conv.dilation, groups=runs * conv.groups, bias=conv.bias is not None,
                     device="meta", dtype=conv.weight.dtype)


def _fused_bn(bn: nn.modules.batchnorm._BatchNorm, runs: int, layout: str) -> FusedBatchNorm:
    if not bn.track_running_stats or bn.momentum is None:
        raise ValueError(
            f"fuse: {bn} needs track_running_stats=True and a float momentum (model.bn_momentum)")
    return FusedBatchNorm(runs, bn.num_features, bn.eps, bn.momentum, bn.affine, layout, device="meta",
                          dtype=bn.running_mean.dtype)


#: modules whose forward only chains their children channel-agnostically (checked by name, so
#: an unknown encoder fails loudly instead of mixing runs)
_ENCODER_CONTAINERS: tuple[type, ...] = (nn.Sequential, BasicBlock, CifarResNet, _TorchvisionEncoder)
_STATELESS: tuple[type, ...] = (nn.ReLU, nn.Identity, nn.AdaptiveAvgPool2d, nn.MaxPool2d)


def _encoder_containers() -> tuple[type, ...]:
    try:  # resnet18_imagenet: torchvision's ResNet and BasicBlock (forward: convs, BNs, ReLU, pools, flatten)
        from torchvision.models.resnet import BasicBlock as TvBasicBlock
        from torchvision.models.resnet import ResNet
    except ImportError:  # pragma: no cover - torchvision is a dependency
        return _ENCODER_CONTAINERS
    return (*_ENCODER_CONTAINERS, TvBasicBlock, ResNet)


def _fuse_encoder(module: nn.Module, runs: int, path: str, containers: tuple[type, ...]) -> nn.Module:
    """Replace, in a (meta) copy of one run's encoder, each operator by its K-run version."""
    if isinstance(module, nn.Conv2d):
        return _fused_conv(module, runs)
    if isinstance(module, nn.BatchNorm2d):
        return _fused_bn(module, runs, "channels")
    if type(module) in _STATELESS:
        return module
    if type(module) in containers:
        if list(module.named_parameters(recurse=False)) or list(module.named_buffers(recurse=False)):
            raise ValueError(f"fuse: {path or 'encoder'} ({type(module).__name__}) holds its own tensors; cannot fuse")
        for name, child in list(module.named_children()):
            setattr(module, name, _fuse_encoder(child, runs, f"{path}.{name}" if path else name, containers))
        return module
    raise ValueError(
        f"fuse: encoder module {path or '<root>'} is a {type(module).__name__}, which horizontal fusion does "
        f"not know how to split by run (known: Conv2d, BatchNorm2d, ReLU, pools, Identity and the "
        f"containers {', '.join(t.__name__ for t in containers)}); add it to firm_bench/run/engine/fused.py")


def _fuse_head(head: nn.Module, runs: int) -> nn.Sequential:
    if not isinstance(head, nn.Sequential):
        raise ValueError(f"fuse: the projection head must be an nn.Sequential (models.projection_head), got {type(head).__name__}")
    mods: list[nn.Module] = []
    for i, m in enumerate(head):
        if isinstance(m, nn.Linear):
            mods.append(FusedLinear(runs, m.in_features, m.out_features, m.bias is not None, device="meta",
                                    dtype=m.weight.dtype))
        elif isinstance(m, nn.BatchNorm1d):
            mods.append(_fused_bn(m, runs, "runs"))
        elif type(m) is nn.ReLU:
            mods.append(m)
        else:
            raise ValueError(f"fuse: head.{i} is a {type(m).__name__}; the fused head takes Linear, BatchNorm1d, ReLU")
    return nn.Sequential(*mods)


# --------------------------------------------------------------------------- #
# the fused model
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class FusedOutput:
    h: Tensor  # (K, B, D) encoder features of each run
    z: Tensor  # (K, B, P) L2-normalised projections of each run


def pack(x: Tensor) -> Tensor:
    """K batches (K, B, C, H, W) -> one input (B, K C, H, W): run k's images on channels [k C, (k+1) C)."""
    if x.dim() != 5:
        raise ValueError(f"fused input must be (K, B, C, H, W), got shape {tuple(x.shape)}")
    k, b, c, h, w = x.shape
    return x.transpose(0, 1).reshape(b, k * c, h, w)


class FusedFirmModel(nn.Module):
    """K ``FirmModel``s of one shape as one module (build it with :func:`fuse`).

    forward(x): x (K, B, 3, H, W) (each run's own batch) or already packed
    (B, 3K, H, W) -> :class:`FusedOutput` h (K, B, D), z (K, B, P).
    ``live`` (K,) bool buffer: the runs that still train (see module doc).
    """

    def __init__(self, encoder: nn.Module, head: nn.Sequential, runs: int, feature_dim: int, proj_dim: int,
                 run_shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head
        self.runs, self.feature_dim, self.proj_dim = int(runs), int(feature_dim), int(proj_dim)
        self.register_buffer("live", torch.ones(self.runs, dtype=torch.bool, device=_device_of(encoder)))
        self._run_shapes = dict(run_shapes)
        self._bns = [m for m in self.modules() if isinstance(m, FusedBatchNorm)]

    def forward(self, x: Tensor) -> FusedOutput:
        for bn in self._bns:
            bn.live = self.live
        xp = pack(x) if x.dim() == 5 else x
        if xp.dim() != 4 or xp.shape[1] % self.runs:
            raise ValueError(f"fused input must be (K={self.runs}, B, C, H, W) or packed (B, K C, H, W), "
                             f"got {tuple(x.shape)}")
        f = self.encoder(xp)  # (B, K D)
        b = f.shape[0]
        runs = f.view(b, self.runs, self.feature_dim)
        cols = self.head(runs.permute(1, 2, 0))  # (K, D, B) -> (K, P, B)
        z = F.normalize(cols, dim=1).transpose(1, 2)  # (K, B, P)
        return FusedOutput(h=runs.transpose(0, 1), z=z)

    @torch.no_grad()
    def features(self, x: Tensor) -> Tensor:
        """Encoder features h (K, B, D) of each run's own images x (K, B, 3, H, W) (mode: the caller's)."""
        b = x.shape[1] if x.dim() == 5 else x.shape[0]
        xp = pack(x) if x.dim() == 5 else x
        return self.encoder(xp).view(b, self.runs, self.feature_dim).transpose(0, 1)

    def state_dict_of(self, k: int) -> dict[str, Tensor]:
        """Run k's ``FirmModel`` state dict (copies, detached): parameters and buffers, exactly."""
        self._check_run(k)
        return {name: t.detach().reshape(self.runs, *self._run_shapes[name])[k].clone()
                for name, t in self.state_dict().items() if name != "live"}

    @torch.no_grad()
    def load_run_state(self, k: int, state: Mapping[str, Tensor]) -> None:
        """Copy a ``FirmModel`` state dict into run k's slices (resume one run from its checkpoint)."""
        self._check_run(k)
        own = {n: t for n, t in self.state_dict(keep_vars=True).items() if n != "live"}
        if set(own) != set(state):
            missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
            raise ValueError(f"load_run_state: state dict keys differ from the fused model's: missing {missing[:5]}, "
                             f"unexpected {extra[:5]}")
        for name, t in own.items():
            src = state[name]
            if tuple(src.shape) != self._run_shapes[name]:
                raise ValueError(f"load_run_state: {name} has shape {tuple(src.shape)}, a run's is {self._run_shapes[name]}")
            t.unflatten(0, (self.runs, -1))[k].copy_(src.reshape(t.shape[0] // self.runs, *t.shape[1:]))

    @torch.no_grad()
    def bind(self, models: Sequence[FirmModel], grads: bool = False) -> None:
        """Make model k's parameters and buffers views of run k's slices of this model's tensors.

        Afterwards the K ``FirmModel``s and the fused model share storage: a
        fused update is seen by model k, a forward pass of model k moves its
        BatchNorm statistics in the fused buffers, and model k's forward runs
        the very kernels of a model trained alone (``speed.pack_kernels:
        per_run``). ``grads``: also give the fused parameters zeroed
        gradients and model k's parameters views of their slices, so that a
        backward pass of model k accumulates its gradients into the fused
        ``.grad`` (zero them in place with :meth:`zero_bound_grads`; never
        ``zero_grad(set_to_none=True)``, which would unbind them). The models
        must have been fused into this model (same names and shapes).
        """
        if len(models) != self.runs:
            raise ValueError(f"bind: {len(models)} models for {self.runs} fused runs")
        params, buffers = dict(self.named_parameters()), dict(self.named_buffers())
        if grads:
            for p in params.values():
                p.grad = torch.zeros_like(p)
        for k, model in enumerate(models):
            for name, p in model.named_parameters():
                p.data = params[name].detach().unflatten(0, (self.runs, -1))[k].view(self._run_shapes[name])
                if grads:
                    p.grad = params[name].grad.unflatten(0, (self.runs, -1))[k].view(self._run_shapes[name])
            for mod_name, mod in model.named_modules():
                for b_name, b in list(mod._buffers.items()):
                    if b is None:
                        continue
                    full = f"{mod_name}.{b_name}" if mod_name else b_name
                    mod._buffers[b_name] = buffers[full].unflatten(0, (self.runs, -1))[k].view(self._run_shapes[full])

    @torch.no_grad()
    def zero_bound_grads(self) -> None:
        """Zero the fused gradients in place (the bound models' gradient views stay bound)."""
        for p in self.parameters():
            if p.grad is not None:
                p.grad.zero_()

    def _check_run(self, k: int) -> None:
        if not 0 <= k < self.runs:
            raise IndexError(f"run index {k} out of range for {self.runs} fused runs")


def _device_of(module: nn.Module) -> torch.device:
    t = next(iter(module.parameters()), None)
    return t.device if t is not None else torch.device("cpu")


def _check_same_shape(models: Sequence[FirmModel]) -> None:
    """The models must be one architecture with equal hyperparameters (their reprs and tensor shapes)."""
    ref_lines = repr(models[0]).splitlines()
    ref_state = models[0].state_dict()
    for k, m in enumerate(models[1:], start=1):
        if not isinstance(m, FirmModel):
            raise ValueError(f"fuse: model {k} is a {type(m).__name__}, not a FirmModel")
        lines = repr(m).splitlines()
        if lines != ref_lines:
            diff = next((a, b) for a, b in itertools.zip_longest(ref_lines, lines, fillvalue="") if a != b)
            raise ValueError(
                f"fuse: model {k} differs from model 0 ({diff[1].strip()!r} vs {diff[0].strip()!r}); fused runs "
                "need the same model section (encoder, width, head, bn_momentum)")
        for name, t in m.state_dict().items():
            r = ref_state[name]
            if t.shape != r.shape or t.dtype != r.dtype or t.device != r.device:
                raise ValueError(f"fuse: model {k}'s {name} is {tuple(t.shape)} {t.dtype} on {t.device}, model 0's "
                                 f"{tuple(r.shape)} {r.dtype} on {r.device}; put every model on one device and dtype")
    if not isinstance(models[0], FirmModel):
        raise ValueError(f"fuse: model 0 is a {type(models[0]).__name__}, not a FirmModel")


def fuse(models: Sequence[FirmModel]) -> FusedFirmModel:
    """One :class:`FusedFirmModel` holding the K models' parameters and buffers exactly.

    The models must share architecture and hyperparameters (ValueError names
    the first difference) and device/dtype; the fused model lives on their
    device, in model 0's train/eval mode and memory format, every run live. The models are not
    modified. No random numbers are drawn (the fused modules are built on the
    meta device and filled from the models).
    """
    models = list(models)
    if not models:
        raise ValueError("fuse: no models given")
    _check_same_shape(models)
    runs = len(models)
    skeleton = copy.deepcopy(models[0]).to("meta")
    encoder = _fuse_encoder(skeleton.encoder, runs, "encoder", _encoder_containers())
    head = _fuse_head(skeleton.head, runs)
    proj_dim = next(m for m in reversed(list(models[0].head)) if isinstance(m, nn.Linear)).out_features
    states = [m.state_dict() for m in models]
    run_shapes = {name: tuple(t.shape) for name, t in states[0].items()}
    fused = FusedFirmModel(encoder, head, runs, models[0].feature_dim, proj_dim, run_shapes)
    device = next(iter(states[0].values())).device
    fused.to_empty(device=device)
    fused.live = torch.ones(runs, dtype=torch.bool, device=device)
    own = fused.state_dict()
    stacked = {}
    for name, t in own.items():
        if name == "live":
            stacked[name] = fused.live
            continue
        if name not in run_shapes:
            raise ValueError(f"fuse: the fused model has {name!r}, which FirmModel does not (a bug in fused.py)")
        stacked[name] = torch.stack([s[name] for s in states]).reshape(t.shape)
    if set(own) - {"live"} != set(run_shapes):
        raise ValueError(f"fuse: FirmModel tensors {sorted(set(run_shapes) - set(own))[:5]} have no fused counterpart")
    fused.load_state_dict(stacked)
    conv = next((m.weight for m in models[0].modules() if isinstance(m, nn.Conv2d)), None)
    if conv is not None and not conv.is_contiguous() and conv.is_contiguous(memory_format=torch.channels_last):
        fused = fused.to(memory_format=torch.channels_last)  # as the models (speed.channels_last)
    return fused.train(models[0].training)


# --------------------------------------------------------------------------- #
# optimiser
# --------------------------------------------------------------------------- #
def _per_run(value: float | Sequence[float] | Tensor, runs: int, like: Tensor, name: str) -> Tensor:
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.dim() == 0:
        t = t.expand(runs)
    if t.shape != (runs,):
        raise ValueError(f"FusedSGD: {name} must be a scalar or have one value per run ({runs}), got shape {tuple(t.shape)}")
    return t


class FusedSGD:
    """torch.optim.SGD (dampening 0, no nesterov, not maximize) applied to each run's slices.

    params: the fused model's parameters (``fused.parameters()``, the order of
    ``FirmModel.parameters()``); each splits among the K runs along dim 0.
    run_shapes: one run's shape of each parameter (``FusedSGD.of(fused)``
    fills them in), the shapes of the per-run momentum buffers handed out.
    weight_decay: a float (every run) or K values. Momentum buffers start at
    zero, so the first step gives buf = g exactly as torch's ``buf = clone(g)``.

    step(lr, momentum, live): lr, momentum (K,) tensors of the parameters'
    dtype and device (or floats / sequences); live (K,) bool or None. Per
    run k and parameter p with gradient grad (p.grad None: skipped, as torch
    skips it)::

        g = grad + wd_k p;  buf = m_k buf + g;  p = p - lr_k buf     (runs with live_k)
        p, buf unchanged                                             (runs without)

    No host reads: with device tensors it can be captured in a CUDA graph.
    The arithmetic is torch's (``addcmul`` rounds as ``add(alpha=)``).
    """

    def __init__(self, params: Sequence[Tensor], runs: int, weight_decay: float | Sequence[float] | Tensor = 0.0,
                 run_shapes: Sequence[tuple[int, ...]] | None = None) -> None:
        self.params = [p for p in params]
        if not self.params:
            raise ValueError("FusedSGD: no parameters")
        self.runs = int(runs)
        for p in self.params:
            if p.dim() == 0 or p.shape[0] % self.runs:
                raise ValueError(f"FusedSGD: a parameter of shape {tuple(p.shape)} does not split into {self.runs} runs on dim 0")
        # one run's shape of each parameter (buffers handed out per run); default (size, *rest)
        self.run_shapes = [tuple(s) for s in run_shapes] if run_shapes is not None else [
            (p.shape[0] // self.runs, *p.shape[1:]) for p in self.params]
        if len(self.run_shapes) != len(self.params):
            raise ValueError(f"FusedSGD: {len(self.run_shapes)} run shapes for {len(self.params)} parameters")
        device = self.params[0].device
        self.scalar_wd = isinstance(weight_decay, (int, float)) and not isinstance(weight_decay, bool)
        self.weight_decay = float(weight_decay) if self.scalar_wd else _per_run(weight_decay, self.runs, self.params[0], "weight_decay")
        self.bufs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.steps = torch.zeros(self.runs, dtype=torch.long, device=device)  # updates each run received

    @classmethod
    def of(cls, fused: "FusedFirmModel", weight_decay: float | Sequence[float] | Tensor = 0.0) -> "FusedSGD":
        """The optimiser of a fused model's parameters (in ``FirmModel.parameters()`` order)."""
        names = [n for n, _ in fused.named_parameters()]
        return cls(list(fused.parameters()), fused.runs, weight_decay, [fused._run_shapes[n] for n in names])

    def _b(self, t: Tensor, p: Tensor) -> Tensor:
        """A (K,) tensor shaped to broadcast against ``p.unflatten(0, (K, -1))``."""
        return t.view(self.runs, *([1] * p.dim()))

    @torch.no_grad()
    def step(self, lr: float | Sequence[float] | Tensor, momentum: float | Sequence[float] | Tensor,
             live: Tensor | None = None) -> None:
        lr = _per_run(lr, self.runs, self.params[0], "lr")
        momentum = _per_run(momentum, self.runs, self.params[0], "momentum")
        if live is not None:
            if live.shape != (self.runs,) or live.dtype != torch.bool:
                raise ValueError(f"FusedSGD.step: live must be bool ({self.runs},), got {live.dtype} {tuple(live.shape)}")
            momentum = torch.where(live, momentum, torch.ones_like(momentum))  # frozen: buf = 1 buf + 0
            self.steps.add_(live.to(torch.long))
        else:
            self.steps.add_(1)
        neg_lr = -lr
        for p, buf in zip(self.params, self.bufs):
            if p.grad is None:
                continue
            K = (self.runs, -1)
            pu, gu, bu = p.unflatten(0, K), p.grad.unflatten(0, K), buf.unflatten(0, K)
            if self.scalar_wd:
                d = gu.add(pu, alpha=self.weight_decay) if self.weight_decay else gu
            else:
                d = torch.addcmul(gu, pu, self._b(self.weight_decay, p))
            if live is not None:
                d = torch.where(self._b(live, p), d, torch.zeros((), dtype=d.dtype, device=d.device))
            bu.mul_(self._b(momentum, p)).add_(d)
            if live is None:
                pu.addcmul_(bu, self._b(neg_lr, p))
            else:
                pu.copy_(torch.where(self._b(live, p), torch.addcmul(pu, bu, self._b(neg_lr, p)), pu))

    # ------------------------------------------------------------ per-run state

    def momentum_buffers_of(self, k: int) -> list[Tensor]:
        """Run k's momentum buffers (copies), one per parameter in order."""
        return [b.unflatten(0, (self.runs, -1))[k].reshape(shape).clone() for b, shape in zip(self.bufs, self.run_shapes)]

    def state_dict_of(self, k: int, group: Mapping[str, object]) -> dict:
        """Run k's optimiser as a ``torch.optim.SGD`` state dict (load it into the unfused run's SGD).

        group: the run's param-group settings (lr, momentum, weight_decay, ...
        and what its scheduler added, e.g. OneCycleLR's initial_lr), without
        ``params``. Before the run's first update the state is empty, as torch's.
        """
        stepped = int(self.steps[k]) > 0
        state = {i: {"momentum_buffer": b} for i, b in enumerate(self.momentum_buffers_of(k))} if stepped else {}
        g = {key: v for key, v in group.items() if key != "params"}
        g["params"] = list(range(len(self.params)))
        return {"state": state, "param_groups": [g]}

    @torch.no_grad()
    def load_run_state(self, k: int, state_dict: Mapping) -> None:
        """Fill run k's momentum buffers from a ``torch.optim.SGD`` state dict of the unfused run."""
        state = state_dict["state"]
        for i, b in enumerate(self.bufs):
            part = b.unflatten(0, (self.runs, -1))[k]
            saved = state.get(i, {}).get("momentum_buffer") if isinstance(state, Mapping) else None
            if saved is None:
                part.zero_()
            else:
                part.copy_(saved.reshape(part.shape))
        self.steps[k] = 1 if len(state) else 0


# --------------------------------------------------------------------------- #
# loss and step
# --------------------------------------------------------------------------- #
class FusedLoss:
    """Each run's own loss on its own projections: ``per_run(z, labels) -> (K,)``.

    losses: K callables ``loss_k(z1, z2, labels_k) -> scalar`` (e.g.
    ``losses.get_loss(name, tau, form)``: each resolves its own form).
    z: (K, 2B, P), rows [view 1; view 2] of each run (as ``TrainEngine.loss``
    concatenates them); computed in float32 (float64 stays). labels: K tensors (B,) or (B, 2)
    (a run's own kinds / [kind, id_class]).
    """

    def __init__(self, losses: Sequence[Callable[[Tensor, Tensor, Tensor], Tensor]]) -> None:
        self.losses = list(losses)
        if not self.losses:
            raise ValueError("FusedLoss: no losses given")

    def per_run(self, z: Tensor, labels: Sequence[Tensor]) -> Tensor:
        if z.shape[0] != len(self.losses) or len(labels) != len(self.losses):
            raise ValueError(f"FusedLoss: {len(self.losses)} losses, z has {z.shape[0]} runs and {len(labels)} label sets")
        z = z.to(torch.promote_types(z.dtype, torch.float32))  # bf16 autocast -> float32; float64 stays
        out = []
        for k, loss in enumerate(self.losses):
            z1, z2 = z[k].chunk(2)
            out.append(loss(z1, z2, labels[k]))
        return torch.stack(out)


def masked_total(losses: Tensor, live: Tensor, freeze_non_finite: bool = True) -> Tensor:
    """The sum of the live runs' losses (the tensor to backpropagate).

    losses: (K,) per-run losses (with their graphs); live: (K,) bool, updated
    in place when ``freeze_non_finite``: live_k &= isfinite(loss_k) (on the
    device, no host read). total = sum_k where(live_k, loss_k, 0): a run that
    is not live gets a zero gradient (``where`` backpropagates 0, never
    0 * NaN, into its graph), the others d total / d loss_k = 1, their own
    gradient unchanged.
    """
    if freeze_non_finite:
        live.logical_and_(torch.isfinite(losses.detach()))
    return torch.where(live, losses, torch.zeros((), dtype=losses.dtype, device=losses.device)).sum()
