"""Slow, obviously-correct references the vectorised library code is tested against."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from firm_bench.method.augment import AugmentConfig


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
