"""Slow, obviously-correct references the vectorised library code is tested against.

``TwoViewAugment`` (with ``color_jitter``, ``gaussian_blur``) is the
training augmentation as the loop ran it before its fast path, drawing from
a generator step by step: ``run.engine.draws.DeviceAugment`` with the
epoch's draws must equal it bit for bit.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from firm_bench.method.augment import (
    AugmentConfig,
    _apply_jitter,
    _blur,
    _check_images,
    _rand,
    normalize,
    random_resized_crop,
    to_float,
)


def reference_two_view(
    x_uint8: Tensor,
    cfg: AugmentConfig,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """Slow reference: torchvision.transforms.v2 applied image by image.

    For tests and the naive benchmark only. Uses torchvision's global RNG
    inside ``fork_rng`` seeded with ``seed``, so the caller's RNG state is
    untouched. Same recipe as ``TwoViewAugment`` (on float images).
    """
    from torchvision.transforms import v2

    t = v2.Compose(
        [
            v2.ToDtype(torch.float32, scale=True),
            v2.RandomResizedCrop(size, scale=cfg.crop_scale, ratio=cfg.crop_ratio, antialias=True),
            v2.RandomApply([v2.ColorJitter(*cfg.jitter)], p=cfg.jitter_p),
            v2.RandomApply([v2.GaussianBlur(cfg.blur_kernel, cfg.blur_sigma)], p=cfg.blur_p),
            v2.Normalize(list(mean), list(std)),
        ]
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        xs = x_uint8.cpu()
        views = [torch.stack([t(img) for img in xs]) for _ in range(2)]
    return views[0].to(x_uint8.device), views[1].to(x_uint8.device)


def color_jitter(
    x: Tensor,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    generator: torch.Generator,
    p: float = 1.0,
) -> Tensor:
    """torchvision ColorJitter per sample, applied with probability p.

    Factors ~ U[max(0, 1 - s), 1 + s] for brightness, contrast, saturation;
    hue shift ~ U[-hue, hue]; a random order of the four ops per sample.
    x: float (B, 3, H, W) in [0, 1]; returns the same shape.
    """
    _check_images(x)
    B = x.shape[0]
    u = _rand((B, 4), generator, x.device)
    order = torch.argsort(_rand((B, 4), generator, x.device), dim=1)
    apply = _rand((B,), generator, x.device) < p
    lo = torch.tensor([max(0.0, 1 - brightness), max(0.0, 1 - contrast), max(0.0, 1 - saturation), -hue], device=x.device)
    hi = torch.tensor([1 + brightness, 1 + contrast, 1 + saturation, hue], device=x.device)
    factors = lo + (hi - lo) * u
    active = tuple(s > 0 for s in (brightness, contrast, saturation, hue))
    if not any(active):
        return x
    return torch.where(apply.view(-1, 1, 1, 1), _apply_jitter(x, factors, order, active), x)


def gaussian_blur(
    x: Tensor,
    kernel_size: int,
    sigma_range: Sequence[float],
    p: float,
    generator: torch.Generator,
) -> Tensor:
    """RandomApply(GaussianBlur(kernel_size, sigma_range), p) per sample.

    sigma ~ U(sigma_range) per sample (same in x and y, as torchvision);
    a sample is blurred with probability p.
    """
    _check_images(x)
    B = x.shape[0]
    sigma = sigma_range[0] + (sigma_range[1] - sigma_range[0]) * _rand((B,), generator, x.device)
    apply = _rand((B,), generator, x.device) < p
    return torch.where(apply.view(-1, 1, 1, 1), _blur(x, kernel_size, sigma), x)


class TwoViewAugment:
    """The training transform: two independent views per image (docs/METHOD.md).

    Per view: random_resized_crop -> color_jitter -> gaussian_blur -> normalize.
    Call with uint8 images (B, 3, S, S) on any device and a generator; returns
    two float32 (B, 3, size, size) tensors on the images' device.
    """

    def __init__(self, cfg: AugmentConfig, size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.cfg, self.size = cfg, int(size)
        self.mean, self.std = tuple(mean), tuple(std)

    def view(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """One augmented, normalised view of float images x in [0, 1]."""
        c = self.cfg
        x = random_resized_crop(x, self.size, c.crop_scale, c.crop_ratio, generator)
        x = color_jitter(x, *c.jitter, generator=generator, p=c.jitter_p)
        x = gaussian_blur(x, c.blur_kernel, c.blur_sigma, c.blur_p, generator)
        return normalize(x, self.mean, self.std)

    def __call__(self, x_uint8: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        _check_images(x_uint8, "x_uint8")
        x = to_float(x_uint8)
        return self.view(x, generator), self.view(x, generator)

    def __repr__(self) -> str:
        return f"TwoViewAugment({self.cfg}, size={self.size}, mean={self.mean}, std={self.std})"
