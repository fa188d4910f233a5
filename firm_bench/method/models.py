"""Encoder and projection head (docs/METHOD.md "Model").

- ``resnet18_cifar``: the CIFAR-style ResNet-18 of the reference code: a 3x3
  stride-1 stem with 64 channels and no max-pool, stages of 64/128/256/512
  channels with strides 1/2/2/2, two BasicBlocks each, global average pool
  -> 512-d. Kaiming-normal init. ``width`` scales every channel count (a
  width of 0.25 gives a 128-d feature), for small CPU presets.
- ``timm/<name>``: any timm backbone (``timm_encoder``), for trying other
  encoders; not a registry entry (timm has hundreds).
- ``resnet18_imagenet``: torchvision's ResNet-18 (7x7 stride-2 stem +
  max-pool), for inputs of 64 px and more (Cats-vs-Dogs, MVTec).
- Projection head: ``head_layers`` bias-free Linear layers
  (512 -> 1024, 6 x 1024 -> 1024, 1024 -> 128 in the paper), BatchNorm1d +
  ReLU after each but the last, a final BatchNorm1d(128, affine=False), then
  L2 normalisation. Linear weights Kaiming-normal (fan_out, relu) as the
  reference's ``initialize_weights`` (``model.head_init: kaiming``), or
  PyTorch's default (``torch``).

Every BatchNorm uses ``bn_momentum`` in PyTorch's sense (the reference code
used 0.9, a TensorFlow value; see the schema). All anomaly scores use the
encoder output ``h``, not the projection ``z``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from firm_bench.core.config import TIMM_PREFIX  # model.encoder: timm/<name>, any timm backbone
from firm_bench.core.facts.method import ENCODERS as ENCODER_FACTS
from firm_bench.core.registry import Registry

ENCODERS: Registry[Callable[..., nn.Module]] = Registry("encoder", facts=ENCODER_FACTS)


class BasicBlock(nn.Module):
    """The ResNet basic block: two 3x3 convolutions and a residual connection."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: Callable[[int], nn.Module]):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = norm(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), norm(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """CIFAR-style ResNet (3x3 stride-1 stem, no max-pool); output (B, 8 * base)."""

    def __init__(self, layers: tuple[int, ...], width: float, bn_momentum: float):
        super().__init__()
        norm = partial(nn.BatchNorm2d, momentum=bn_momentum)
        base = max(1, round(64 * width))
        chans = [base, 2 * base, 4 * base, 8 * base]
        self.stem = nn.Sequential(nn.Conv2d(3, base, 3, 1, 1, bias=False), norm(base), nn.ReLU(inplace=True))
        stages, c_in = [], base
        for i, (c, n) in enumerate(zip(chans, layers)):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(c_in, c, 2 if (i > 0 and j == 0) else 1, norm))
                c_in = c
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.out_dim = chans[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stages(self.stem(x))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


@ENCODERS.register("resnet18_cifar")
def resnet18_cifar(width: float = 1.0, bn_momentum: float = 0.1) -> nn.Module:
    """ResNet-18 with the CIFAR stem (docs/METHOD.md "Model"); feature dim 512 * width."""
    return CifarResNet((2, 2, 2, 2), width, bn_momentum)


class _TorchvisionEncoder(nn.Module):
    def __init__(self, net: nn.Module, out_dim: int):
        super().__init__()
        net.fc = nn.Identity()
        self.net = net
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@ENCODERS.register("resnet18_imagenet")
def resnet18_imagenet(width: float = 1.0, bn_momentum: float = 0.1) -> nn.Module:
    """torchvision's ResNet-18 (ImageNet stem: 7x7/2 conv + max-pool), random init, 512-d."""
    import torchvision

    if width != 1.0:
        raise ValueError(
            f"model.width={width}: resnet18_imagenet (torchvision) has a fixed width; "
            "use width 1.0 or encoder resnet18_cifar"
        )
    norm = partial(nn.BatchNorm2d, momentum=bn_momentum)
    return _TorchvisionEncoder(torchvision.models.resnet18(weights=None, norm_layer=norm), 512)




class _TimmEncoder(nn.Module):
    """A timm backbone without its classifier: (B, 3, H, W) -> pooled features (B, num_features)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.out_dim = int(net.num_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def timm_encoder(name: str, width: float = 1.0, bn_momentum: float = 0.1) -> nn.Module:
    """``model.encoder: timm/<name>``: timm's ``create_model(name, pretrained=False, num_classes=0)``.

    Random initialisation (timm's own), every BatchNorm's momentum set to
    ``bn_momentum``; the feature dimension is the model's ``num_features``.
    ``width`` must be 1 (timm models have their own sizes: pick a smaller
    model instead). The paper's encoder stays ``resnet18_cifar``.
    """
    import timm

    if width != 1.0:
        raise ValueError(f"model.width={width}: timm encoders have a fixed width; use width 1.0 or another timm model")
    try:
        net = timm.create_model(name, pretrained=False, num_classes=0)
    except RuntimeError as exc:  # timm: "Unknown model (...)"
        raise ValueError(f"model.encoder={TIMM_PREFIX}{name}: {exc}; timm.list_models() lists the names") from None
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = bn_momentum
    return _TimmEncoder(net)


HEAD_INITS = ("kaiming", "torch")


def projection_head(
    in_dim: int, hidden: int = 1024, out_dim: int = 128, layers: int = 8, bn_momentum: float = 0.1,
    init: str = "kaiming",
) -> nn.Sequential:
    """The projection MLP: ``layers`` bias-free Linear layers, BN + ReLU between, BN(affine=False) last.

    init ``kaiming``: every Linear weight ~ kaiming_normal_(mode="fan_out",
    nonlinearity="relu"), as the reference initialised the whole model
    (Willtl/firm util.py ``initialize_weights``; BatchNorm weight 1, bias 0,
    which is PyTorch's default too); ``torch``: PyTorch's Linear default
    (kaiming_uniform_, a = sqrt(5)).
    """
    if layers < 1:
        raise ValueError(f"model.head_layers must be >= 1, got {layers}")
    if init not in HEAD_INITS:
        raise ValueError(f"model.head_init={init!r}; valid: {', '.join(HEAD_INITS)}")
    mods: list[nn.Module] = []
    dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
    for i in range(layers):
        mods.append(nn.Linear(dims[i], dims[i + 1], bias=False))
        if i < layers - 1:
            mods += [nn.BatchNorm1d(dims[i + 1], momentum=bn_momentum), nn.ReLU(inplace=True)]
    mods.append(nn.BatchNorm1d(out_dim, affine=False, momentum=bn_momentum))
    if init == "kaiming":
        for m in mods:
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return nn.Sequential(*mods)


@dataclass(frozen=True)
class ModelOutput:
    h: Tensor  # (B, D) encoder features (used by every score)
    z: Tensor  # (B, proj_dim) L2-normalised projection (used by the loss)


class FirmModel(nn.Module):
    """Encoder + projection head. ``forward`` returns both ``h`` and ``z``."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.feature_dim: int = encoder.out_dim  # type: ignore[assignment]

    def forward(self, x: Tensor) -> ModelOutput:
        h = self.encoder(x)
        return ModelOutput(h=h, z=F.normalize(self.head(h), dim=1))

    @torch.no_grad()
    def features(self, x: Tensor) -> Tensor:
        """Encoder features only (eval mode is the caller's business)."""
        return self.encoder(x)


def create_model(model_cfg: dict) -> FirmModel:
    """Build the model from the ``model`` config section (see the schema)."""
    name = str(model_cfg["encoder"])
    build = partial(timm_encoder, name[len(TIMM_PREFIX):]) if name.startswith(TIMM_PREFIX) else ENCODERS.get(name)
    momentum = float(model_cfg["bn_momentum"])
    encoder = build(width=float(model_cfg["width"]), bn_momentum=momentum)
    head = projection_head(
        encoder.out_dim,
        hidden=int(model_cfg["head_hidden"]),
        out_dim=int(model_cfg["proj_dim"]),
        layers=int(model_cfg["head_layers"]),
        bn_momentum=momentum,
        init=str(model_cfg.get("head_init", "kaiming")),
    )
    return FirmModel(encoder, head)


def initial_model(model_cfg: dict, seed: int) -> FirmModel:
    """A run's model at initialisation: :func:`create_model` under ``torch.manual_seed(seed)``, on the CPU.

    Deterministic, so the untrained-encoder baseline of a run (the features of
    its encoder before the first step) is rebuilt from the config alone. It
    depends only on the seed and the ``model`` section, not on the loss: every
    loss of a seed starts from the same weights.
    """
    torch.manual_seed(int(seed))
    return create_model(model_cfg)
